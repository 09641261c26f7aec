//! Reads of the message history: pages, "after sequence N", which
//! conversations moved since (with read marks and unread counts), and
//! read marks.

use confab_queue::ConversationId;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, dialect, now_ms, sql_id};
use crate::error::{Error, Result};

/// The default and the largest page.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub message_id: u64,
    pub conversation_id: String,
    pub seq: u64,
    pub sender: u64,
    pub body: String,
    pub client_msg_id: String,
    pub server_time_ms: i64,
    /// Recalled by its sender (the body is empty).
    pub recalled: bool,
    /// Not 0: this entry is the recall of that message.
    pub recall_of: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationState {
    pub conversation_id: String,
    pub seq: u64,
    pub last_message_id: u64,
    pub updated_at_ms: i64,
    pub read_seq: u64,
    /// Messages from others after `read_seq` (not recalled, no recall
    /// entries), at most [`UNREAD_CAP`].
    pub unread_count: u64,
    /// A direct conversation: the other user's read mark (0 for a group).
    pub peer_read_seq: u64,
}

/// Unread counts stop here (a client shows "10000+"): counting is a walk
/// of the unread rows, bounded so that a sync of a long-unread
/// conversation stays cheap.
pub const UNREAD_CAP: u64 = 10_000;

pub(crate) fn message_from_row(r: &AnyRow) -> Result<StoredMessage> {
    Ok(StoredMessage {
        message_id: r.try_get::<i64, _>("message_id")? as u64,
        conversation_id: r.try_get("conversation_id")?,
        seq: r.try_get::<i64, _>("seq")? as u64,
        sender: r.try_get::<i64, _>("sender_id")? as u64,
        body: r.try_get("body")?,
        client_msg_id: r.try_get("client_msg_id")?,
        server_time_ms: r.try_get("server_time")?,
        recalled: r.try_get::<i64, _>("recalled_at")? != 0,
        recall_of: r.try_get::<i64, _>("recall_of")? as u64,
    })
}

fn page(limit: u32) -> i64 {
    i64::from(if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    })
}

pub(crate) fn seq_arg(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

pub(crate) const MESSAGE_COLUMNS: &str = "message_id, conversation_id, seq, sender_id, body, client_msg_id, \
     server_time, COALESCE(recalled_at, 0) AS recalled_at, COALESCE(recall_of, 0) AS recall_of";

impl Db {
    /// Fails with `NotParticipant` unless `user` is one of the two users of a
    /// direct conversation or a member of the group (a missing group answers
    /// the same, so the answer tells nothing about other groups).
    pub async fn check_participant(&self, user: u64, conv: &ConversationId) -> Result<()> {
        if user == 0 {
            return Err(Error::Invalid("the acting user is required".into()));
        }
        let ok = match *conv {
            ConversationId::Direct { lo, hi } => lo == user || hi == user,
            ConversationId::Group(g) => self.role_of(g, user).await?.is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::NotParticipant {
                user,
                conversation: conv.to_string(),
            })
        }
    }

    /// Whether message `id` is stored.
    pub async fn message_written(&self, id: u64) -> Result<bool> {
        let t = self.metrics.time("message_written");
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT 1 FROM messages WHERE message_id = $1",
        ))
        .bind(sql_id("message", id)?)
        .fetch_optional(&self.pool)
        .await;
        Ok(t.finish(row)?.is_some())
    }

    /// Newest first: messages with seq < `before_seq` (0: from the newest),
    /// for a participant `user`.
    pub async fn history(
        &self,
        user: u64,
        conversation: &str,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let conv: ConversationId = conversation.parse()?;
        self.check_participant(user, &conv).await?;
        let before = if before_seq == 0 {
            i64::MAX
        } else {
            seq_arg(before_seq)
        };
        let t = self.metrics.time("history");
        let rows = sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
            self.backend,
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3"
            ),
        )))
        .bind(conv.to_string())
        .bind(before)
        .bind(page(limit))
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?.iter().map(message_from_row).collect()
    }

    /// Oldest first: messages with seq > `after_seq`, for a participant
    /// `user`.
    pub async fn messages_after(
        &self,
        user: u64,
        conversation: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let conv: ConversationId = conversation.parse()?;
        self.check_participant(user, &conv).await?;
        let t = self.metrics.time("messages_after");
        let rows = sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
            self.backend,
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
            ),
        )))
        .bind(conv.to_string())
        .bind(seq_arg(after_seq))
        .bind(page(limit))
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?.iter().map(message_from_row).collect()
    }

    /// The conversations of `user` (direct and of its groups) moved by a
    /// commit after the cursor `since` (0: all), in commit order, with the
    /// user's read marks; and the cursor to pass next time.
    ///
    /// The cursor is the commit-order counter's committed value, read
    /// first: writers take the counter last and hold its row until they
    /// commit, so every commit stamped at or below it is visible to the
    /// query that follows, and nothing committed later is stamped at or
    /// below it. No clock is involved.
    pub async fn changed_conversations(
        &self,
        user: u64,
        since: u64,
    ) -> Result<(Vec<ConversationState>, u64)> {
        self.require_users(&[user]).await?;
        let t = self.metrics.time("changed_conversations");
        let read = async {
            let (next,): (i64,) = sqlx::query_as(dialect::sql(
                self.backend,
                "SELECT next_id FROM id_counters WHERE name = 'change'",
            ))
            .fetch_one(&self.pool)
            .await?;
            // Counted up to the cap: a derived table with a LIMIT stops the
            // count there; MySQL takes no outer column inside a derived
            // table, so there the count is whole and capped after.
            let unread_rows = "FROM messages m WHERE m.conversation_id = c.id \
                 AND m.seq > COALESCE(r.seq, 0) AND m.sender_id <> $1 AND m.recalled_at IS NULL \
                 AND m.recall_of IS NULL";
            let unread = match self.backend {
                Backend::Mysql => format!("LEAST((SELECT COUNT(*) {unread_rows}), {UNREAD_CAP})"),
                _ => format!("(SELECT COUNT(*) FROM (SELECT 1 {unread_rows} LIMIT {UNREAD_CAP}) unread)"),
            };
            // Rows older than the counter carry 0: "all" includes them.
            let (me, after) = (user as i64, if since == 0 { -1 } else { seq_arg(since) });
            let rows = sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
                self.backend,
                format!(
                    "SELECT c.id, c.seq, c.last_message_id, c.updated_at, COALESCE(r.seq, 0) AS read_seq, \
                     COALESCE(p.seq, 0) AS peer_read_seq, \
                     {unread} AS unread_count \
                     FROM conversations c \
                     LEFT JOIN read_marks r ON r.user_id = $2 AND r.conversation_id = c.id \
                     LEFT JOIN read_marks p ON c.kind = 1 AND p.conversation_id = c.id \
                     AND p.user_id = CASE WHEN c.user_lo = $3 THEN c.user_hi ELSE c.user_lo END \
                     WHERE (c.user_lo = $4 OR c.user_hi = $5 OR c.group_id IN \
                     (SELECT group_id FROM group_members WHERE user_id = $6)) \
                     AND (c.change_seq > $7 OR COALESCE(r.change_seq, 0) > $8 OR COALESCE(p.change_seq, 0) > $9) \
                     ORDER BY c.change_seq, c.id"
                ),
            )))
            .bind(me)
            .bind(me)
            .bind(me)
            .bind(me)
            .bind(me)
            .bind(me)
            .bind(after)
            .bind(after)
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            Ok::<_, sqlx::Error>((rows, (next - 1).max(0) as u64))
        };
        let (rows, cursor) = t.finish(read.await)?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(ConversationState {
                    conversation_id: r.try_get("id")?,
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    last_message_id: r.try_get::<i64, _>("last_message_id")? as u64,
                    updated_at_ms: r.try_get("updated_at")?,
                    read_seq: r.try_get::<i64, _>("read_seq")? as u64,
                    unread_count: r.try_get::<i64, _>("unread_count")? as u64,
                    peer_read_seq: r.try_get::<i64, _>("peer_read_seq")? as u64,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((list, cursor.max(since)))
    }

    /// The message `sender` stored with `client_msg_id` (a resend finds the
    /// original), if any.
    pub async fn find_sent(&self, sender: u64, client_msg_id: &str) -> Result<Option<StoredMessage>> {
        let sender = sql_id("user", sender)?;
        if client_msg_id.is_empty() {
            return Err(Error::Invalid("a client_msg_id is required".into()));
        }
        let t = self.metrics.time("find_sent");
        let row = sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
            self.backend,
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = $1 AND {}",
                client_key(self.backend)
            ),
        )))
        .bind(sender)
        .bind(client_msg_id.to_owned())
        .fetch_optional(&self.pool)
        .await;
        t.finish(row)?.as_ref().map(message_from_row).transpose()
    }

    /// Records that `user` read `conversation` up to `seq` (0: up to the
    /// newest message; past the newest: the newest). The mark never goes
    /// back. Returns the mark stored now and whether this call moved it; a
    /// mark that moved takes the next commit-order value, so sync lists the
    /// conversation again for the reader and (direct) the other user.
    pub async fn mark_read(&self, user: u64, conversation: &str, seq: u64) -> Result<(u64, bool)> {
        let conv: ConversationId = conversation.parse()?;
        let u = sql_id("user", user).map_err(|_| Error::UserNotFound(user))?;
        self.require_users(&[user]).await?;
        self.check_participant(user, &conv).await?;
        let t = self.metrics.time("mark_read");
        let id = conv.to_string();
        let write = async {
            let mut tx = self.begin_write().await?;
            let newest: Option<(i64,)> = sqlx::query_as(dialect::sql(
                self.backend,
                "SELECT seq FROM conversations WHERE id = $1",
            ))
            .bind(id.clone())
            .fetch_optional(&mut *tx)
            .await?;
            let newest = newest.map_or(0, |(s,)| s);
            let old: Option<(i64,)> = sqlx::query_as(dialect::sql(
                self.backend,
                "SELECT seq FROM read_marks WHERE user_id = $1 AND conversation_id = $2",
            ))
            .bind(u)
            .bind(id.clone())
            .fetch_optional(&mut *tx)
            .await?;
            let old = old.map_or(0, |(s,)| s);
            let wanted = if seq == 0 {
                newest
            } else {
                seq_arg(seq).min(newest)
            };
            if wanted <= old {
                tx.commit().await?;
                return Ok::<_, Error>((old as u64, false));
            }
            // The counter's row lock is held from here to the commit: one
            // statement more.
            let change = self.next_id(&mut tx, "change").await?;
            sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
                self.backend,
                format!(
                    "INSERT INTO read_marks (user_id, conversation_id, seq, updated_at, change_seq) \
                     VALUES ($1, $2, $3, $4, $5){}",
                    dialect::upsert(
                        self.backend,
                        "(user_id, conversation_id)",
                        &["seq", "updated_at", "change_seq"]
                    )
                ),
            )))
            .bind(u)
            .bind(id.clone())
            .bind(wanted)
            .bind(now_ms())
            .bind(change)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((wanted as u64, true))
        };
        t.finish(write.await)
    }
}

/// The condition on a sender's client message id (`$2` after the sender's
/// `$1`) that the index of the keys serves: a partial index on SQLite and
/// PostgreSQL, used only when the query says the id is not empty; on MySQL
/// the generated column that holds the non-empty ids.
pub(super) fn client_key(backend: Backend) -> &'static str {
    match backend {
        Backend::Mysql => "client_key = $2",
        Backend::Sqlite | Backend::Postgres => "client_msg_id = $2 AND client_msg_id <> ''",
    }
}
