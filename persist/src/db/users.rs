//! Users and sessions (devices with their tokens).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, Params, dialect, now_ms, sql_id};
use crate::error::{Error, Result, is_unique_violation};
use crate::password;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub token: String,
    pub device: String,
}

pub(crate) fn user_from_row(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: r.try_get::<i64, _>("id")? as u64,
        name: r.try_get("name")?,
        created_at_ms: r.try_get("created_at")?,
    })
}

/// A user name: 1..=64 characters, no whitespace or control characters.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Invalid(format!(
            "user name {name:?} must be 1-64 characters without spaces"
        )));
    }
    Ok(())
}

impl Db {
    #[tracing::instrument(skip(self, password))]
    pub async fn create_user(&self, name: &str, password: &str) -> Result<User> {
        check_name(name)?;
        if password.is_empty() || password.len() > 1024 {
            return Err(Error::Invalid("password must be 1-1024 bytes".into()));
        }
        let hash = password::hash(&self.hashes, password.to_owned(), self.argon2_memory_kib).await?;
        let t = self.metrics.time("create_user");
        t.finish(self.insert_user(name, hash).await)
    }

    async fn insert_user(&self, name: &str, hash: String) -> Result<User> {
        let mut tx = self.begin_write().await?;
        let id = self.next_id(&mut tx, "user").await?;
        let now = now_ms();
        let r = sqlx::query(dialect::sql(
            self.backend,
            "INSERT INTO users (id, name, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        ))
        .bind(id)
        .bind(name.to_owned())
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::NameTaken(name.to_owned())),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(User {
            id: id as u64,
            name: name.to_owned(),
            created_at_ms: now,
        })
    }

    /// Checks the password and opens a session for `device`.
    #[tracing::instrument(skip(self, password))]
    pub async fn authenticate(&self, name: &str, password: &str, device: &str) -> Result<Session> {
        let t = self.metrics.time("authenticate");
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT id, name, created_at, password_hash FROM users WHERE name = $1",
        ))
        .bind(name.to_owned())
        .fetch_optional(&self.pool)
        .await;
        let row = t.finish(row)?.ok_or(Error::BadCredentials)?;
        let phc: String = row.try_get("password_hash")?;
        let user = user_from_row(&row)?;
        if !password::verify(&self.hashes, password.to_owned(), phc).await? {
            return Err(Error::BadCredentials);
        }
        let device = if device.is_empty() { "default" } else { device };
        if device.len() > 128 {
            return Err(Error::Invalid("device label longer than 128 bytes".into()));
        }
        let token = password::new_token();
        let now = now_ms();
        let t = self.metrics.time("create_session");
        let hash = password::token_hash(&token);
        let uid = user.id as i64;
        let max = i64::from(self.limits().max_tokens_per_user);
        let (same_device, over_cap) = t.finish(
            async {
                let mut tx = self.begin_write().await?;
                // The new token replaces the device's earlier ones (its
                // session is kicked), and the user keeps the newest `max`.
                let same_device = sqlx::query(dialect::sql(
                    self.backend,
                    "DELETE FROM sessions WHERE user_id = $1 AND device = $2",
                ))
                .bind(uid)
                .bind(device.to_owned())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(dialect::sql(
                    self.backend,
                    "INSERT INTO sessions (token_hash, user_id, device, created_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                ))
                .bind(hash.clone())
                .bind(uid)
                .bind(device.to_owned())
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // The ones past the newest `max`, then their delete (MySQL
                // takes no LIMIT in a subquery of the table it deletes from).
                let older: Vec<(String,)> = sqlx::query_as(dialect::sql(
                    self.backend,
                    "SELECT token_hash FROM sessions WHERE user_id = $1 \
                     ORDER BY created_at DESC, token_hash LIMIT 1000 OFFSET $2",
                ))
                .bind(uid)
                .bind(max)
                .fetch_all(&mut *tx)
                .await?;
                let mut over_cap = 0;
                for (token,) in older {
                    over_cap += sqlx::query(dialect::sql(
                        self.backend,
                        "DELETE FROM sessions WHERE token_hash = $1",
                    ))
                    .bind(token)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok::<_, Error>((same_device, over_cap))
            }
            .await,
        )?;
        let revoked = &self.metrics.token_revocations;
        revoked.with_label_values(&["same_device"]).inc_by(same_device);
        revoked.with_label_values(&["over_cap"]).inc_by(over_cap);
        Ok(Session {
            user,
            token,
            device: device.to_owned(),
        })
    }

    /// The session of `token`, valid until revoked or until
    /// `limits.token_lifetime_ms` after its login (an expired token is
    /// deleted and refused).
    pub async fn resume_session(&self, token: &str) -> Result<Session> {
        let t = self.metrics.time("resume_session");
        let hash = password::token_hash(token);
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT u.id, u.name, u.created_at, s.device, s.created_at AS issued_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        ))
        .bind(hash.clone())
        .fetch_optional(&self.pool)
        .await;
        let row = t.finish(row)?.ok_or(Error::SessionNotFound)?;
        let issued_at: i64 = row.try_get("issued_at")?;
        let lifetime = i64::try_from(self.limits().token_lifetime_ms).unwrap_or(i64::MAX);
        if now_ms().saturating_sub(issued_at) >= lifetime {
            sqlx::query(dialect::sql(
                self.backend,
                "DELETE FROM sessions WHERE token_hash = $1",
            ))
            .bind(hash)
            .execute(&self.pool)
            .await?;
            self.metrics
                .token_revocations
                .with_label_values(&["expired"])
                .inc();
            return Err(Error::SessionNotFound);
        }
        sqlx::query(dialect::sql(
            self.backend,
            "UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2",
        ))
        .bind(now_ms())
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(Session {
            user: user_from_row(&row)?,
            token: token.to_owned(),
            device: row.try_get("device")?,
        })
    }

    pub async fn revoke_session(&self, token: &str) -> Result<()> {
        let t = self.metrics.time("revoke_session");
        let r = sqlx::query(dialect::sql(
            self.backend,
            "DELETE FROM sessions WHERE token_hash = $1",
        ))
        .bind(password::token_hash(token))
        .execute(&self.pool)
        .await;
        if t.finish(r)?.rows_affected() == 0 {
            return Err(Error::SessionNotFound);
        }
        self.metrics
            .token_revocations
            .with_label_values(&["logout"])
            .inc();
        Ok(())
    }

    /// Revokes every token of `user` on `devices` (their sessions were
    /// kicked by another device's login).
    pub async fn revoke_devices(&self, user: u64, devices: &[String]) -> Result<u64> {
        let uid = sql_id("user", user)?;
        let t = self.metrics.time("revoke_devices");
        let n = t.finish(
            async {
                let mut n = 0;
                for device in devices {
                    n += sqlx::query(dialect::sql(
                        self.backend,
                        "DELETE FROM sessions WHERE user_id = $1 AND device = $2",
                    ))
                    .bind(uid)
                    .bind(device.clone())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                }
                Ok::<_, Error>(n)
            }
            .await,
        )?;
        self.metrics
            .token_revocations
            .with_label_values(&["kicked"])
            .inc_by(n);
        Ok(n)
    }

    pub async fn get_user(&self, id: u64) -> Result<User> {
        let t = self.metrics.time("get_user");
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT id, name, created_at FROM users WHERE id = $1",
        ))
        .bind(sql_id("user", id).map_err(|_| Error::UserNotFound(id))?)
        .fetch_optional(&self.pool)
        .await;
        user_from_row(&t.finish(row)?.ok_or(Error::UserNotFound(id))?)
    }

    pub async fn get_user_by_name(&self, name: &str) -> Result<User> {
        let t = self.metrics.time("get_user_by_name");
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT id, name, created_at FROM users WHERE name = $1",
        ))
        .bind(name.to_owned())
        .fetch_optional(&self.pool)
        .await;
        user_from_row(
            &t.finish(row)?
                .ok_or_else(|| Error::UserNameNotFound(name.to_owned()))?,
        )
    }

    /// The users among `ids` that exist, in id order (at most 1000 ids).
    pub async fn get_users(&self, ids: &[u64]) -> Result<Vec<User>> {
        if ids.len() > 1000 {
            return Err(Error::Invalid("at most 1000 ids per call".into()));
        }
        let ids: Vec<i64> = ids
            .iter()
            .filter(|v| **v != 0 && **v <= i64::MAX as u64)
            .map(|v| *v as i64)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = String::from("SELECT id, name, created_at FROM users WHERE id IN (");
        Params::new(self.backend).list(&mut sql, ids.len());
        sql.push_str(") ORDER BY id");
        let t = self.metrics.time("get_users");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for id in ids {
            q = q.bind(id);
        }
        let rows = t.finish(q.fetch_all(&self.pool).await)?;
        rows.iter().map(user_from_row).collect()
    }

    /// Users whose name starts with `prefix` and sorts after `after` (the
    /// last name of the previous page; "" from the start), by name.
    pub async fn search_users(&self, prefix: &str, after: &str, limit: u32) -> Result<Vec<User>> {
        let limit = i64::from(limit.clamp(1, 100));
        let escaped: String = prefix
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '!' => vec!['!', c],
                c => vec![c],
            })
            .collect();
        let t = self.metrics.time("search_users");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT id, name, created_at FROM users WHERE name LIKE $1 ESCAPE '!' \
             AND name > $2 ORDER BY name LIMIT $3",
        ))
        .bind(format!("{escaped}%"))
        .bind(after.to_owned())
        .bind(limit)
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?.iter().map(user_from_row).collect()
    }

    /// Fails with `UserNotFound` unless every id exists.
    pub(crate) async fn require_users(&self, ids: &[u64]) -> Result<()> {
        let found = self.get_users(ids).await?;
        for id in ids {
            if !found.iter().any(|u| u.id == *id) {
                return Err(Error::UserNotFound(*id));
            }
        }
        Ok(())
    }
}
