//! The writer's batch insert: idempotent (a message id already stored is
//! skipped, and so is a message whose sender already stored one with the
//! same non-empty `client_msg_id`: a resend), sequences assigned per
//! conversation in batch order, one transaction per batch, stamped with the
//! next value of the commit-order counter (what sync reads).

use std::collections::{HashMap, HashSet};

use confab_queue::{ConversationId, NewMessage};
use sqlx::{Any, Row, Transaction};

use super::{Backend, Db, Params, dialect, now_ms};
use crate::error::{Error, Result};

/// Rows per multi-row statement (7 parameters each: under every engine's
/// parameter limit).
const CHUNK: usize = 1000;

/// A message this batch stored, with its sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenMessage {
    pub message_id: u64,
    pub conversation_id: String,
    pub seq: u64,
    pub sender: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub written: Vec<WrittenMessage>,
    /// Messages already stored (redeliveries and resends), or repeated
    /// within the batch.
    pub duplicates: usize,
    /// The commit-order stamp of the conversations this batch moved (0 when
    /// it wrote nothing).
    pub change: i64,
}

struct ConvPlan {
    id: String,
    conv: ConversationId,
    count: i64,
    last_message_id: i64,
}

impl Db {
    /// Writes `msgs` (in send order) in one transaction. Retries a few times
    /// on its own when a concurrent writer stored one of the ids meanwhile.
    pub async fn write_batch(&self, msgs: &[NewMessage]) -> Result<BatchOutcome> {
        let t = self.metrics.time("write_batch");
        let mut attempt = 0;
        loop {
            match self.try_write_batch(msgs).await {
                Ok(Some(out)) => return t.finish(Ok(out)),
                Ok(None) if attempt < 3 => attempt += 1,
                Ok(None) => {
                    return t.finish(Err(Error::Internal(
                        "batch kept racing with another writer".into(),
                    )));
                }
                Err(e) => return t.finish(Err(e)),
            }
        }
    }

    async fn try_write_batch(&self, msgs: &[NewMessage]) -> Result<Option<BatchOutcome>> {
        let mut seen = HashSet::with_capacity(msgs.len());
        let mut keys = HashSet::new();
        let unique: Vec<&NewMessage> = msgs
            .iter()
            .filter(|m| seen.insert(m.message_id))
            .filter(|m| m.client_msg_id.is_empty() || keys.insert((m.sender, m.client_msg_id.as_str())))
            .collect();
        let nothing = |duplicates| {
            Ok(Some(BatchOutcome {
                duplicates,
                ..BatchOutcome::default()
            }))
        };
        if unique.is_empty() {
            return nothing(msgs.len());
        }
        let mut tx = self.begin_write().await?;
        let existing = existing_ids(&mut tx, self.backend, &unique).await?;
        let resent = existing_keys(&mut tx, self.backend, &unique).await?;
        let fresh: Vec<&NewMessage> = unique
            .into_iter()
            .filter(|m| !existing.contains(&(m.message_id as i64)))
            .filter(|m| {
                m.client_msg_id.is_empty() || !resent.contains(&(m.sender as i64, m.client_msg_id.as_str()))
            })
            .collect();
        let duplicates = msgs.len() - fresh.len();
        if fresh.is_empty() {
            tx.commit().await?;
            return nothing(duplicates);
        }

        // Conversations of the batch, in id order (one lock order for all
        // writers), with how many sequences each needs.
        let mut plans: Vec<ConvPlan> = Vec::new();
        let mut index: HashMap<ConversationId, usize> = HashMap::new();
        for m in &fresh {
            let i = *index.entry(m.conversation).or_insert_with(|| {
                plans.push(ConvPlan {
                    id: m.conversation.to_string(),
                    conv: m.conversation,
                    count: 0,
                    last_message_id: 0,
                });
                plans.len() - 1
            });
            plans[i].count += 1;
            plans[i].last_message_id = m.message_id as i64;
        }
        plans.sort_by(|a, b| a.id.cmp(&b.id));
        let now = now_ms();
        let backend = self.backend;
        ensure_conversations(&mut tx, backend, &plans, now).await?;
        let last_seq = bump_sequences(&mut tx, backend, &plans, now).await?;

        // Sequences in batch order: first = last - count + 1.
        let mut next: HashMap<ConversationId, (&str, i64)> = plans
            .iter()
            .map(|p| {
                let last = last_seq.get(&p.id).copied().unwrap_or(0);
                (p.conv, (p.id.as_str(), last - p.count + 1))
            })
            .collect();
        let mut written = Vec::with_capacity(fresh.len());
        let mut seqs = Vec::with_capacity(fresh.len());
        for m in &fresh {
            let (id, seq) = next
                .get_mut(&m.conversation)
                .ok_or_else(|| Error::Internal(format!("{} missing from sequence update", m.conversation)))?;
            seqs.push(*seq);
            written.push(WrittenMessage {
                message_id: m.message_id,
                conversation_id: (*id).to_owned(),
                seq: *seq as u64,
                sender: m.sender,
            });
            *seq += 1;
        }
        let inserted = insert_messages(&mut tx, backend, &fresh, &seqs).await?;
        if inserted != fresh.len() as u64 {
            // Another writer stored some of these ids (or client ids) after
            // our check: start over, they will count as duplicates.
            tx.rollback().await?;
            return Ok(None);
        }
        // Last, so the counter's row lock is held only for the commit.
        let change = self.next_id(&mut tx, "change").await?;
        stamp_change(&mut tx, backend, &plans, change).await?;
        tx.commit().await?;
        Ok(Some(BatchOutcome {
            written,
            duplicates,
            change,
        }))
    }
}

/// The (sender, client_msg_id) pairs of `msgs` already stored (resends of
/// a message written before).
async fn existing_keys<'m>(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    msgs: &[&'m NewMessage],
) -> Result<HashSet<(i64, &'m str)>> {
    let keyed: Vec<&NewMessage> = msgs
        .iter()
        .copied()
        .filter(|m| !m.client_msg_id.is_empty())
        .collect();
    let mut found = HashSet::new();
    // Each pair must be a lookup in the index of the keys, not a scan of
    // the table per batch. SQLite scans for an OR of pairs (and for a row
    // value IN a list): a join with the pairs as a VALUES table is a loop
    // of index searches there and on PostgreSQL, whose index is partial
    // (the query says the id is not empty). MySQL's index is on the
    // generated column of the non-empty ids, and its range access serves
    // the OR.
    for chunk in keyed.chunks(CHUNK / 2) {
        let mut params = Params::new(backend);
        let mut sql = String::new();
        if backend == Backend::Mysql {
            sql.push_str("SELECT sender_id, client_msg_id FROM messages WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str("(sender_id = ");
                params.push(&mut sql);
                sql.push_str(" AND client_key = ");
                params.push(&mut sql);
                sql.push(')');
            }
        } else {
            sql.push_str("SELECT m.sender_id, m.client_msg_id FROM (VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                params.tuple(&mut sql, 2);
            }
            sql.push_str(
                ") AS k JOIN messages m ON m.sender_id = k.column1 AND m.client_msg_id = k.column2 \
                 AND m.client_msg_id <> ''",
            );
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for m in chunk {
            q = q.bind(m.sender as i64).bind(m.client_msg_id.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            let sender: i64 = row.try_get(0)?;
            let key: String = row.try_get(1)?;
            if let Some(m) = chunk
                .iter()
                .find(|m| m.sender as i64 == sender && m.client_msg_id == key)
            {
                found.insert((sender, m.client_msg_id.as_str()));
            }
        }
    }
    Ok(found)
}

/// Stamps the batch's conversations with its commit-order value.
async fn stamp_change(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    plans: &[ConvPlan],
    change: i64,
) -> Result<()> {
    for chunk in plans.chunks(CHUNK) {
        let mut params = Params::new(backend);
        let mut sql = String::from("UPDATE conversations SET change_seq = ");
        params.push(&mut sql);
        sql.push_str(" WHERE id IN (");
        params.list(&mut sql, chunk.len());
        sql.push(')');
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(change);
        for p in chunk {
            q = q.bind(p.id.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn existing_ids(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    msgs: &[&NewMessage],
) -> Result<HashSet<i64>> {
    let mut found = HashSet::new();
    for chunk in msgs.chunks(CHUNK) {
        let mut sql = String::from("SELECT message_id FROM messages WHERE message_id IN (");
        Params::new(backend).list(&mut sql, chunk.len());
        sql.push(')');
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for m in chunk {
            q = q.bind(m.message_id as i64);
        }
        for row in q.fetch_all(&mut **tx).await? {
            found.insert(row.try_get::<i64, _>(0)?);
        }
    }
    Ok(found)
}

async fn ensure_conversations(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    plans: &[ConvPlan],
    now: i64,
) -> Result<()> {
    for chunk in plans.chunks(CHUNK / 2) {
        let (insert, skip) = dialect::insert_or_skip(backend, "(id)");
        let mut sql = format!(
            "{insert} INTO conversations (id, kind, user_lo, user_hi, group_id, updated_at, seq, \
             last_message_id) VALUES "
        );
        let mut params = Params::new(backend);
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            params.list(&mut sql, 6);
            sql.push_str(", 0, 0)");
        }
        sql.push_str(&skip);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for p in chunk {
            let (lo, hi, group) = match p.conv {
                ConversationId::Direct { lo, hi } => (Some(lo as i64), Some(hi as i64), None),
                ConversationId::Group(g) => (None, None, Some(g as i64)),
            };
            q = q
                .bind(p.id.clone())
                .bind(p.conv.kind())
                .bind(lo)
                .bind(hi)
                .bind(group)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds each plan's count to its conversation's sequence; returns the new
/// last sequence per conversation id.
async fn bump_sequences(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    plans: &[ConvPlan],
    now: i64,
) -> Result<HashMap<String, i64>> {
    if backend == Backend::Mysql {
        return bump_sequences_mysql(tx, plans, now).await;
    }
    let mut out = HashMap::with_capacity(plans.len());
    for chunk in plans.chunks(CHUNK / 2) {
        let mut params = Params::new(backend);
        let mut sql = String::from("UPDATE conversations SET updated_at = ");
        params.push(&mut sql);
        sql.push_str(", seq = conversations.seq + v.column2, last_message_id = v.column3 FROM (VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            params.tuple(&mut sql, 3);
        }
        sql.push_str(") AS v WHERE conversations.id = v.column1 RETURNING id, seq");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false).bind(now);
        for p in chunk {
            q = q.bind(p.id.clone()).bind(p.count).bind(p.last_message_id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
        }
    }
    if out.len() != plans.len() {
        return Err(Error::Internal(format!(
            "sequence update touched {} of {} conversations",
            out.len(),
            plans.len()
        )));
    }
    Ok(out)
}

/// [`bump_sequences`] in MySQL's grammar: no `UPDATE ... FROM (VALUES)`
/// and no `RETURNING`, so a join on a derived table, then a read of the new
/// sequences (the rows stay locked by the update until the commit).
async fn bump_sequences_mysql(
    tx: &mut Transaction<'static, Any>,
    plans: &[ConvPlan],
    now: i64,
) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::with_capacity(plans.len());
    for chunk in plans.chunks(CHUNK / 2) {
        let mut sql = String::from("UPDATE conversations JOIN (");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "SELECT ? AS id, ? AS n, ? AS last"
            } else {
                " UNION ALL SELECT ?, ?, ?"
            });
        }
        sql.push_str(
            ") AS v ON conversations.id = v.id SET conversations.updated_at = ?, \
             conversations.seq = conversations.seq + v.n, conversations.last_message_id = v.last",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for p in chunk {
            q = q.bind(p.id.clone()).bind(p.count).bind(p.last_message_id);
        }
        q.bind(now).execute(&mut **tx).await?;
        let mut sql = String::from("SELECT id, seq FROM conversations WHERE id IN (");
        Params::new(Backend::Mysql).list(&mut sql, chunk.len());
        sql.push(')');
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for p in chunk {
            q = q.bind(p.id.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
        }
    }
    if out.len() != plans.len() {
        return Err(Error::Internal(format!(
            "sequence update found {} of {} conversations",
            out.len(),
            plans.len()
        )));
    }
    Ok(out)
}

async fn insert_messages(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    msgs: &[&NewMessage],
    seqs: &[i64],
) -> Result<u64> {
    let mut inserted = 0;
    for (chunk, seq_chunk) in msgs.chunks(CHUNK).zip(seqs.chunks(CHUNK)) {
        let mut sql = String::with_capacity(120 + chunk.len() * 40);
        // Any unique key: the id, or the sender's client id of a resend.
        let (insert, skip) = dialect::insert_or_skip(backend, "");
        sql.push_str(insert);
        sql.push_str(
            " INTO messages (message_id, conversation_id, seq, sender_id, body, \
             client_msg_id, server_time) VALUES ",
        );
        let mut params = Params::new(backend);
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            params.tuple(&mut sql, 7);
        }
        sql.push_str(&skip);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (m, seq) in chunk.iter().zip(seq_chunk) {
            q = q
                .bind(m.message_id as i64)
                .bind(m.conversation.to_string())
                .bind(*seq)
                .bind(m.sender as i64)
                .bind(m.body.clone())
                .bind(m.client_msg_id.clone())
                .bind(m.server_time_ms);
        }
        inserted += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(inserted)
}
