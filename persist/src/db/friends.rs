//! Friend requests and friendships (two rows per friendship).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::users::{User, user_from_row};
use super::{Backend, Db, dialect, now_ms, sql_id};
use crate::error::{Error, Result};

pub const PENDING: i16 = 1;
pub const ACCEPTED: i16 = 2;
pub const DECLINED: i16 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FriendRequest {
    pub from_user: u64,
    pub to_user: u64,
    pub note: String,
    /// 1 pending, 2 accepted, 3 declined.
    pub state: i16,
    pub created_at_ms: i64,
}

fn request_from_row(r: &AnyRow) -> Result<FriendRequest> {
    Ok(FriendRequest {
        from_user: r.try_get::<i64, _>("from_user")? as u64,
        to_user: r.try_get::<i64, _>("to_user")? as u64,
        note: r.try_get("note")?,
        state: r.try_get::<i16, _>("state")?,
        created_at_ms: r.try_get("created_at")?,
    })
}

fn check_note(note: &str) -> Result<()> {
    if note.len() > 512 {
        return Err(Error::Invalid("note longer than 512 bytes".into()));
    }
    Ok(())
}

impl Db {
    /// Asks `to` for friendship. When `to` had already asked `from`, both
    /// become friends at once (the bool is true).
    pub async fn send_friend_request(&self, from: u64, to: u64, note: &str) -> Result<(FriendRequest, bool)> {
        check_note(note)?;
        if from == to {
            return Err(Error::Invalid("cannot befriend oneself".into()));
        }
        self.require_users(&[from, to]).await?;
        let (f, t_) = (sql_id("user", from)?, sql_id("user", to)?);
        let t = self.metrics.time("send_friend_request");
        t.finish(
            async {
                let mut tx = self.begin_write().await?;
                let already = sqlx::query(dialect::sql(
                    self.backend,
                    "SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2",
                ))
                .bind(f)
                .bind(t_)
                .fetch_optional(&mut *tx)
                .await?;
                if already.is_some() {
                    return Err(Error::AlreadyFriends {
                        user: from,
                        friend: to,
                    });
                }
                let now = now_ms();
                // The sender's pending requests, counted under a lock on its
                // user row so that concurrent requests cannot both pass.
                self.lock_row(&mut tx, "users", f).await?;
                let (pending,): (i64,) = sqlx::query_as(dialect::sql(
                    self.backend,
                    "SELECT COUNT(*) FROM friend_requests \
                     WHERE from_user = $1 AND state = $2 AND to_user <> $3",
                ))
                .bind(f)
                .bind(PENDING)
                .bind(t_)
                .fetch_one(&mut *tx)
                .await?;
                let max = self.limits().max_pending_friend_requests;
                let answers_theirs = sqlx::query(dialect::sql(
                    self.backend,
                    "SELECT 1 FROM friend_requests WHERE from_user = $1 AND to_user = $2 AND state = $3",
                ))
                .bind(t_)
                .bind(f)
                .bind(PENDING)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if !answers_theirs && pending >= i64::from(max) {
                    return Err(self.limit_reached(
                        "pending_friend_requests",
                        format!("user {from} has {pending} friend requests waiting for an answer"),
                        max,
                    ));
                }
                let reverse = sqlx::query(dialect::sql(
                    self.backend,
                    "UPDATE friend_requests SET state = $1, decided_at = $2 \
                     WHERE from_user = $3 AND to_user = $4 AND state = $5",
                ))
                .bind(ACCEPTED)
                .bind(now)
                .bind(t_)
                .bind(f)
                .bind(PENDING)
                .execute(&mut *tx)
                .await?;
                let became_friends = reverse.rows_affected() == 1;
                let state = if became_friends { ACCEPTED } else { PENDING };
                let upsert = dialect::upsert(
                    self.backend,
                    "(from_user, to_user)",
                    &["note", "state", "created_at"],
                );
                sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
                    self.backend,
                    format!(
                        "INSERT INTO friend_requests (from_user, to_user, note, state, created_at) \
                         VALUES ($1, $2, $3, $4, $5){upsert}, decided_at = NULL"
                    ),
                )))
                .bind(f)
                .bind(t_)
                .bind(note.to_owned())
                .bind(state)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if became_friends {
                    insert_friendship(&mut tx, self.backend, f, t_, now).await?;
                }
                tx.commit().await?;
                Ok((
                    FriendRequest {
                        from_user: from,
                        to_user: to,
                        note: note.to_owned(),
                        state,
                        created_at_ms: now,
                    },
                    became_friends,
                ))
            }
            .await,
        )
    }

    /// `user` accepts or declines the pending request of `from`.
    pub async fn respond_friend_request(&self, user: u64, from: u64, accept: bool) -> Result<FriendRequest> {
        let (u, f) = (sql_id("user", user)?, sql_id("user", from)?);
        let t = self.metrics.time("respond_friend_request");
        t.finish(
            async {
                let mut tx = self.begin_write().await?;
                let now = now_ms();
                let state = if accept { ACCEPTED } else { DECLINED };
                // An update, then a read of the row it moved (no UPDATE ...
                // RETURNING on MySQL): the update's lock keeps it as it is.
                let updated = sqlx::query(dialect::sql(
                    self.backend,
                    "UPDATE friend_requests SET state = $1, decided_at = $2 \
                     WHERE from_user = $3 AND to_user = $4 AND state = $5",
                ))
                .bind(state)
                .bind(now)
                .bind(f)
                .bind(u)
                .bind(PENDING)
                .execute(&mut *tx)
                .await?;
                let row = if updated.rows_affected() == 0 {
                    None
                } else {
                    sqlx::query(dialect::sql(
                        self.backend,
                        "SELECT from_user, to_user, note, state, created_at FROM friend_requests \
                         WHERE from_user = $1 AND to_user = $2",
                    ))
                    .bind(f)
                    .bind(u)
                    .fetch_optional(&mut *tx)
                    .await?
                };
                let row = row.ok_or(Error::NoPendingRequest {
                    kind: "friend",
                    from,
                    to: user,
                })?;
                if accept {
                    insert_friendship(&mut tx, self.backend, u, f, now).await?;
                }
                tx.commit().await?;
                request_from_row(&row)
            }
            .await,
        )
    }

    /// Pending requests to (incoming) and from (outgoing) `user`.
    pub async fn list_friend_requests(&self, user: u64) -> Result<(Vec<FriendRequest>, Vec<FriendRequest>)> {
        self.require_users(&[user]).await?;
        let t = self.metrics.time("list_friend_requests");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT from_user, to_user, note, state, created_at FROM friend_requests \
             WHERE (to_user = $1 OR from_user = $2) AND state = $3 ORDER BY created_at",
        ))
        .bind(user as i64)
        .bind(user as i64)
        .bind(PENDING)
        .fetch_all(&self.pool)
        .await;
        let all = t
            .finish(rows)?
            .iter()
            .map(request_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(all.into_iter().partition(|r| r.to_user == user))
    }

    pub async fn list_friends(&self, user: u64) -> Result<Vec<User>> {
        self.require_users(&[user]).await?;
        let t = self.metrics.time("list_friends");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT u.id, u.name, u.created_at FROM friendships f \
             JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1 ORDER BY u.name",
        ))
        .bind(user as i64)
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?.iter().map(user_from_row).collect()
    }

    pub async fn remove_friend(&self, user: u64, friend: u64) -> Result<()> {
        let (u, f) = (sql_id("user", user)?, sql_id("user", friend)?);
        let t = self.metrics.time("remove_friend");
        let r = sqlx::query(dialect::sql(
            self.backend,
            "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) \
             OR (user_id = $3 AND friend_id = $4)",
        ))
        .bind(u)
        .bind(f)
        .bind(f)
        .bind(u)
        .execute(&self.pool)
        .await;
        if t.finish(r)?.rows_affected() == 0 {
            return Err(Error::NotFriends { user, friend });
        }
        Ok(())
    }

    /// True when the two are friends.
    pub async fn are_friends(&self, user: u64, friend: u64) -> Result<bool> {
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2",
        ))
        .bind(sql_id("user", user)?)
        .bind(sql_id("user", friend)?)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}

async fn insert_friendship(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    a: i64,
    b: i64,
    now: i64,
) -> Result<()> {
    let (insert, skip) = dialect::insert_or_skip(backend, "(user_id, friend_id)");
    sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
        backend,
        format!(
            "{insert} INTO friendships (user_id, friend_id, since) VALUES ($1, $2, $3), ($4, $5, $6){skip}"
        ),
    )))
    .bind(a)
    .bind(b)
    .bind(now)
    .bind(b)
    .bind(a)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
