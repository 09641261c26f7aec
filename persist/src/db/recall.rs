//! Recalls: a sender takes back its message within a window. The message
//! keeps its row and sequence with its body emptied and `recalled_at` set;
//! a recall entry (no body, `recall_of` naming the message, the recaller as
//! sender) takes the conversation's next sequence in the same transaction,
//! and the conversation takes the next commit-order value, so a device
//! that was offline finds the recall by sync like a message.

use confab_queue::ConversationId;
use sqlx::Row;

use super::history::{MESSAGE_COLUMNS, StoredMessage, message_from_row};
use super::{Db, dialect, now_ms, sql_id};
use crate::error::{Error, Result};

/// What a recall did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recall {
    /// The recall entry (`recall_of` = the message).
    pub entry: StoredMessage,
    /// The message was recalled before (nothing changed now).
    pub repeated: bool,
}

impl Db {
    /// `user` recalls its message `message_id`, sent at most `window_ms`
    /// before now (by the message's server time); `entry_id` is the id of
    /// the recall entry (made by the gateway, unique like a message id).
    pub async fn recall(&self, user: u64, message_id: u64, entry_id: u64, window_ms: u64) -> Result<Recall> {
        let u = sql_id("user", user)?;
        let id = sql_id("message", message_id)?;
        let entry = sql_id("recall entry", entry_id)?;
        let t = self.metrics.time("recall");
        let work = async {
            let mut tx = self.begin_write().await?;
            // Locks the message's row (PostgreSQL, MySQL; SQLite's write
            // transaction holds the database), then reads it: two recalls
            // of one message do not both make an entry.
            sqlx::query(dialect::sql(
                self.backend,
                "UPDATE messages SET message_id = message_id WHERE message_id = $1",
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(dialect::sql(
                self.backend,
                "SELECT conversation_id, sender_id, server_time, COALESCE(recall_of, 0) AS recall_of \
                 FROM messages WHERE message_id = $1",
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::MessageNotFound(message_id))?;
            let conversation: String = row.try_get("conversation_id")?;
            let sender = row.try_get::<i64, _>("sender_id")? as u64;
            let sent_at: i64 = row.try_get("server_time")?;
            if row.try_get::<i64, _>("recall_of")? != 0 {
                return Err(Error::Invalid(format!(
                    "{message_id} is a recall entry, not a message"
                )));
            }
            if sender != user {
                return Err(Error::NotSender {
                    user,
                    message: message_id,
                });
            }
            // Still a participant (a member who left a group recalls
            // nothing there). Asked inside the transaction: a pool of one
            // connection must not wait for a second.
            let participant = match conversation.parse::<ConversationId>()? {
                ConversationId::Direct { lo, hi } => lo == user || hi == user,
                ConversationId::Group(g) => sqlx::query(dialect::sql(
                    self.backend,
                    "SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2",
                ))
                .bind(g as i64)
                .bind(u)
                .fetch_optional(&mut *tx)
                .await?
                .is_some(),
            };
            if !participant {
                return Err(Error::NotParticipant { user, conversation });
            }
            let existing = sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
                self.backend,
                format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE recall_of = $1"),
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(existing) = existing {
                tx.commit().await?;
                return Ok(Recall {
                    entry: message_from_row(&existing)?,
                    repeated: true,
                });
            }
            let now = now_ms();
            if now.saturating_sub(sent_at) > window_ms.min(i64::MAX as u64) as i64 {
                return Err(Error::RecallWindowPassed {
                    message: message_id,
                    window_ms,
                });
            }
            sqlx::query(dialect::sql(
                self.backend,
                "UPDATE messages SET body = '', recalled_at = $1 WHERE message_id = $2",
            ))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(dialect::sql(
                self.backend,
                "UPDATE conversations SET seq = seq + 1, last_message_id = $1, updated_at = $2 WHERE id = $3",
            ))
            .bind(entry)
            .bind(now)
            .bind(conversation.clone())
            .execute(&mut *tx)
            .await?;
            let (seq,): (i64,) = sqlx::query_as(dialect::sql(
                self.backend,
                "SELECT seq FROM conversations WHERE id = $1",
            ))
            .bind(conversation.clone())
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(dialect::sql(
                self.backend,
                "INSERT INTO messages (message_id, conversation_id, seq, sender_id, body, \
                 client_msg_id, server_time, recall_of) VALUES ($1, $2, $3, $4, '', '', $5, $6)",
            ))
            .bind(entry)
            .bind(conversation.clone())
            .bind(seq)
            .bind(u)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            // Last, so the counter's row lock is held only for the commit.
            let change = self.next_id(&mut tx, "change").await?;
            sqlx::query(dialect::sql(
                self.backend,
                "UPDATE conversations SET change_seq = $1 WHERE id = $2",
            ))
            .bind(change)
            .bind(conversation.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Recall {
                entry: StoredMessage {
                    message_id: entry_id,
                    conversation_id: conversation,
                    seq: seq as u64,
                    sender: user,
                    body: String::new(),
                    client_msg_id: String::new(),
                    server_time_ms: now,
                    recalled: false,
                    recall_of: message_id,
                },
                repeated: false,
            })
        };
        t.finish(work.await)
    }
}
