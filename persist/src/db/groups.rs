//! Groups, members with roles, and join requests (invitations are in
//! [`super::invites`]).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::friends::{ACCEPTED, DECLINED, PENDING};
use super::{Db, dialect, now_ms, sql_id};
use crate::error::{Error, Result};

pub const MEMBER: i16 = 1;
pub const ADMIN: i16 = 2;
pub const OWNER: i16 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub owner: u64,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user: u64,
    /// 1 member, 2 admin, 3 owner.
    pub role: i16,
    pub joined_at_ms: i64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: u64,
    pub user: u64,
    pub note: String,
    pub state: i16,
    pub created_at_ms: i64,
}

pub(super) fn group_from_row(r: &AnyRow) -> Result<Group> {
    Ok(Group {
        id: r.try_get::<i64, _>("id")? as u64,
        name: r.try_get("name")?,
        owner: r.try_get::<i64, _>("owner_id")? as u64,
        created_at_ms: r.try_get("created_at")?,
    })
}

fn join_from_row(r: &AnyRow) -> Result<JoinRequest> {
    Ok(JoinRequest {
        group_id: r.try_get::<i64, _>("group_id")? as u64,
        user: r.try_get::<i64, _>("user_id")? as u64,
        note: r.try_get("note")?,
        state: r.try_get("state")?,
        created_at_ms: r.try_get("created_at")?,
    })
}

impl Db {
    pub async fn create_group(&self, owner: u64, name: &str) -> Result<Group> {
        if name.trim().is_empty() || name.chars().count() > 128 {
            return Err(Error::Invalid("group name must be 1-128 characters".into()));
        }
        self.require_users(&[owner]).await?;
        let t = self.metrics.time("create_group");
        t.finish(
            async {
                let mut tx = self.begin_write().await?;
                let id = self.next_id(&mut tx, "group").await?;
                let now = now_ms();
                sqlx::query(dialect::sql(
                    self.backend,
                    "INSERT INTO chat_groups (id, name, owner_id, created_at) VALUES ($1, $2, $3, $4)",
                ))
                .bind(id)
                .bind(name.to_owned())
                .bind(owner as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                self.add_member(&mut tx, id as u64, owner, OWNER, now).await?;
                tx.commit().await?;
                Ok(Group {
                    id: id as u64,
                    name: name.to_owned(),
                    owner,
                    created_at_ms: now,
                })
            }
            .await,
        )
    }

    pub async fn get_group(&self, group: u64) -> Result<Group> {
        let g = sql_id("group", group).map_err(|_| Error::GroupNotFound(group))?;
        let t = self.metrics.time("get_group");
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT id, name, owner_id, created_at FROM chat_groups WHERE id = $1",
        ))
        .bind(g)
        .fetch_optional(&self.pool)
        .await;
        group_from_row(&t.finish(row)?.ok_or(Error::GroupNotFound(group))?)
    }

    /// Deletes the group, its members and requests (not its history).
    pub async fn delete_group(&self, group: u64, by_user: u64) -> Result<()> {
        let g = self.get_group(group).await?;
        if g.owner != by_user {
            return Err(Error::NotPermitted {
                group,
                user: by_user,
                action: "delete the group",
            });
        }
        let t = self.metrics.time("delete_group");
        t.finish(
            async {
                let mut tx = self.begin_write().await?;
                for sql in [
                    "DELETE FROM group_join_requests WHERE group_id = $1",
                    "DELETE FROM group_invites WHERE group_id = $1",
                    "DELETE FROM group_members WHERE group_id = $1",
                    "DELETE FROM chat_groups WHERE id = $1",
                ] {
                    sqlx::query(dialect::sql(self.backend, sql))
                        .bind(group as i64)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
            .await,
        )
    }

    /// The groups `user` is a member of.
    pub async fn list_groups(&self, user: u64) -> Result<Vec<Group>> {
        self.require_users(&[user]).await?;
        let t = self.metrics.time("list_groups");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT g.id, g.name, g.owner_id, g.created_at FROM group_members m \
             JOIN chat_groups g ON g.id = m.group_id WHERE m.user_id = $1 ORDER BY g.id",
        ))
        .bind(user as i64)
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?.iter().map(group_from_row).collect()
    }

    /// The members of `group`, for one of them (`by_user`): anyone else,
    /// and anyone asking about a group that does not exist, is refused alike.
    pub async fn list_members(&self, group: u64, by_user: u64) -> Result<Vec<Member>> {
        self.check_participant(by_user, &confab_queue::ConversationId::Group(group))
            .await?;
        self.members_of(group).await
    }

    /// The members of `group`, unchecked.
    async fn members_of(&self, group: u64) -> Result<Vec<Member>> {
        self.get_group(group).await?;
        let t = self.metrics.time("list_members");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT m.user_id, m.role, m.joined_at, u.name FROM group_members m \
             JOIN users u ON u.id = m.user_id WHERE m.group_id = $1 ORDER BY m.user_id",
        ))
        .bind(group as i64)
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?
            .iter()
            .map(|r| {
                Ok(Member {
                    user: r.try_get::<i64, _>("user_id")? as u64,
                    role: r.try_get("role")?,
                    joined_at_ms: r.try_get("joined_at")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    /// The role of `user` in `group`; None when not a member (or no group).
    pub async fn role_of(&self, group: u64, user: u64) -> Result<Option<i16>> {
        let row = sqlx::query(dialect::sql(
            self.backend,
            "SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2",
        ))
        .bind(sql_id("group", group)?)
        .bind(sql_id("user", user)?)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("role")?),
            None => None,
        })
    }

    pub(super) async fn require_approver(&self, group: u64, user: u64, action: &'static str) -> Result<()> {
        match self.role_of(group, user).await? {
            Some(r) if r >= ADMIN => Ok(()),
            _ => Err(Error::NotPermitted { group, user, action }),
        }
    }

    /// The owner and admins of `group`.
    pub async fn approvers(&self, group: u64) -> Result<Vec<u64>> {
        Ok(self
            .members_of(group)
            .await?
            .into_iter()
            .filter(|m| m.role >= ADMIN)
            .map(|m| m.user)
            .collect())
    }

    /// `user` asks to join `group` (a pending request; again after a decline).
    pub async fn request_join(&self, group: u64, user: u64, note: &str) -> Result<JoinRequest> {
        if note.len() > 512 {
            return Err(Error::Invalid("note longer than 512 bytes".into()));
        }
        self.get_group(group).await?;
        self.require_users(&[user]).await?;
        if self.role_of(group, user).await?.is_some() {
            return Err(Error::AlreadyMember { group, user });
        }
        let now = now_ms();
        let t = self.metrics.time("request_join");
        t.finish(
            sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
                self.backend,
                format!(
                    "INSERT INTO group_join_requests (group_id, user_id, note, state, created_at) \
                     VALUES ($1, $2, $3, $4, $5){}, decided_at = NULL, decided_by = NULL",
                    dialect::upsert(
                        self.backend,
                        "(group_id, user_id)",
                        &["note", "state", "created_at"]
                    )
                ),
            )))
            .bind(group as i64)
            .bind(user as i64)
            .bind(note.to_owned())
            .bind(PENDING)
            .bind(now)
            .execute(&self.pool)
            .await,
        )?;
        Ok(JoinRequest {
            group_id: group,
            user,
            note: note.to_owned(),
            state: PENDING,
            created_at_ms: now,
        })
    }

    /// An owner or admin approves or denies the pending request of `user`.
    pub async fn respond_join(
        &self,
        group: u64,
        user: u64,
        by_user: u64,
        accept: bool,
    ) -> Result<JoinRequest> {
        self.get_group(group).await?;
        self.require_approver(group, by_user, "approve join requests")
            .await?;
        let t = self.metrics.time("respond_join");
        t.finish(
            async {
                let mut tx = self.begin_write().await?;
                let now = now_ms();
                // An update, then a read of the row it moved (no UPDATE ...
                // RETURNING on MySQL): the update's lock keeps it as it is.
                let updated = sqlx::query(dialect::sql(
                    self.backend,
                    "UPDATE group_join_requests SET state = $1, decided_at = $2, decided_by = $3 \
                     WHERE group_id = $4 AND user_id = $5 AND state = $6",
                ))
                .bind(if accept { ACCEPTED } else { DECLINED })
                .bind(now)
                .bind(by_user as i64)
                .bind(group as i64)
                .bind(sql_id("user", user)?)
                .bind(PENDING)
                .execute(&mut *tx)
                .await?;
                let row = if updated.rows_affected() == 0 {
                    None
                } else {
                    sqlx::query(dialect::sql(
                        self.backend,
                        "SELECT group_id, user_id, note, state, created_at FROM group_join_requests \
                         WHERE group_id = $1 AND user_id = $2",
                    ))
                    .bind(group as i64)
                    .bind(user as i64)
                    .fetch_optional(&mut *tx)
                    .await?
                };
                let row = row.ok_or(Error::NoPendingRequest {
                    kind: "join",
                    from: user,
                    to: group,
                })?;
                if accept {
                    self.add_member(&mut tx, group, user, MEMBER, now).await?;
                    sqlx::query(dialect::sql(
                        self.backend,
                        "DELETE FROM group_invites WHERE group_id = $1 AND user_id = $2",
                    ))
                    .bind(group as i64)
                    .bind(user as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                join_from_row(&row)
            }
            .await,
        )
    }

    /// Pending join requests of `group`, for its owner or an admin.
    pub async fn list_join_requests(&self, group: u64, by_user: u64) -> Result<Vec<JoinRequest>> {
        self.get_group(group).await?;
        self.require_approver(group, by_user, "see join requests").await?;
        let t = self.metrics.time("list_join_requests");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT group_id, user_id, note, state, created_at FROM group_join_requests \
             WHERE group_id = $1 AND state = $2 ORDER BY created_at",
        ))
        .bind(group as i64)
        .bind(PENDING)
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?.iter().map(join_from_row).collect()
    }

    /// `user` leaves `group`; the owner cannot leave (delete the group).
    pub async fn leave_group(&self, group: u64, user: u64) -> Result<()> {
        match self.role_of(group, user).await? {
            None => Err(Error::NotPermitted {
                group,
                user,
                action: "leave (not a member)",
            }),
            Some(OWNER) => Err(Error::NotPermitted {
                group,
                user,
                action: "leave as the owner",
            }),
            Some(_) => {
                let t = self.metrics.time("leave_group");
                t.finish(
                    sqlx::query(dialect::sql(
                        self.backend,
                        "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
                    ))
                    .bind(group as i64)
                    .bind(user as i64)
                    .execute(&self.pool)
                    .await,
                )?;
                Ok(())
            }
        }
    }
}

impl Db {
    /// Adds `user` to `group` with `role` inside `tx`; a member already
    /// there stays as it is. A group at `limits.max_group_members` takes
    /// no one more: the count is made under a lock on the group's row, so
    /// two concurrent joins cannot both take the last place.
    pub(super) async fn add_member(
        &self,
        tx: &mut Transaction<'static, Any>,
        group: u64,
        user: u64,
        role: i16,
        now: i64,
    ) -> Result<()> {
        self.lock_row(tx, "chat_groups", group as i64).await?;
        let (members, already): (i64, i64) = sqlx::query_as(dialect::sql(
            self.backend,
            "SELECT (SELECT COUNT(*) FROM group_members WHERE group_id = $1), \
             (SELECT COUNT(*) FROM group_members WHERE group_id = $2 AND user_id = $3)",
        ))
        .bind(group as i64)
        .bind(group as i64)
        .bind(user as i64)
        .fetch_one(&mut **tx)
        .await?;
        let max = self.limits().max_group_members;
        if already == 0 && members >= i64::from(max) {
            return Err(self.limit_reached(
                "group_members",
                format!("group {group} is full ({members} members)"),
                max,
            ));
        }
        let (insert, skip) = dialect::insert_or_skip(self.backend, "(group_id, user_id)");
        sqlx::query(sqlx::AssertSqlSafe(dialect::owned(
            self.backend,
            format!("{insert} INTO group_members (group_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4){skip}"),
        )))
        .bind(group as i64)
        .bind(user as i64)
        .bind(role)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

impl Db {
    /// Removes `user` from `group`: the owner removes anyone but itself, an
    /// admin removes plain members only.
    pub async fn remove_member(&self, group: u64, user: u64, by_user: u64) -> Result<()> {
        self.get_group(group).await?;
        let actor = self.role_of(group, by_user).await?;
        let target = self.role_of(group, user).await?;
        let allowed = match (actor, target) {
            (Some(OWNER), Some(t)) => t != OWNER,
            (Some(ADMIN), Some(MEMBER)) => true,
            _ => false,
        };
        if !allowed {
            return Err(Error::NotPermitted {
                group,
                user: by_user,
                action: "remove this member",
            });
        }
        let t = self.metrics.time("remove_member");
        t.finish(
            sqlx::query(dialect::sql(
                self.backend,
                "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
            ))
            .bind(group as i64)
            .bind(user as i64)
            .execute(&self.pool)
            .await,
        )?;
        Ok(())
    }

    /// The owner (`by_user`) makes member `user` an admin.
    pub async fn promote_admin(&self, group: u64, user: u64, by_user: u64) -> Result<Member> {
        let g = self.get_group(group).await?;
        if g.owner != by_user || self.role_of(group, by_user).await? != Some(OWNER) {
            return Err(Error::NotPermitted {
                group,
                user: by_user,
                action: "promote admins",
            });
        }
        match self.role_of(group, user).await? {
            Some(MEMBER) => {}
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "user {user} is already an admin or the owner of group {group}"
                )));
            }
            None => {
                return Err(Error::NotParticipant {
                    user,
                    conversation: format!("g:{group}"),
                });
            }
        }
        let t = self.metrics.time("promote_admin");
        t.finish(
            sqlx::query(dialect::sql(
                self.backend,
                "UPDATE group_members SET role = $1 WHERE group_id = $2 AND user_id = $3",
            ))
            .bind(ADMIN)
            .bind(group as i64)
            .bind(user as i64)
            .execute(&self.pool)
            .await,
        )?;
        self.members_of(group)
            .await?
            .into_iter()
            .find(|m| m.user == user)
            .ok_or(Error::NotParticipant {
                user,
                conversation: format!("g:{group}"),
            })
    }

    /// Of `(group, user)` pairs, those where `user` is a member of `group`.
    pub async fn memberships(&self, pairs: &[(u64, u64)]) -> Result<std::collections::HashSet<(u64, u64)>> {
        let mut out = std::collections::HashSet::new();
        for chunk in pairs.chunks(400) {
            let groups: std::collections::BTreeSet<i64> = chunk.iter().map(|p| p.0 as i64).collect();
            let users: std::collections::BTreeSet<i64> = chunk.iter().map(|p| p.1 as i64).collect();
            let mut sql = String::from("SELECT group_id, user_id FROM group_members WHERE group_id IN (");
            let mut params = super::Params::new(self.backend);
            params.list(&mut sql, groups.len());
            sql.push_str(") AND user_id IN (");
            params.list(&mut sql, users.len());
            sql.push(')');
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for g in &groups {
                q = q.bind(*g);
            }
            for u in &users {
                q = q.bind(*u);
            }
            for r in q.fetch_all(&self.pool).await? {
                let pair = (
                    r.try_get::<i64, _>("group_id")? as u64,
                    r.try_get::<i64, _>("user_id")? as u64,
                );
                out.insert(pair);
            }
        }
        Ok(out)
    }
}
