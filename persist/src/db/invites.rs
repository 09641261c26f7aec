//! Invitations to a group: pending until the invitee answers, so an
//! invitation is never a way into a group (or around
//! `allow_strangers = false`) without the invitee's consent.

use sqlx::{Any, Row, Transaction};

use super::friends::{ACCEPTED, PENDING};
use super::groups::{ADMIN, Group, MEMBER, Member, group_from_row};
use super::{Backend, Db, dialect, now_ms, sql_id};
use crate::error::{Error, Result};

/// A pending invitation of `user` to `group` by `invited_by`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub group: Group,
    pub user: u64,
    pub invited_by: u64,
    pub created_at_ms: i64,
}

/// What inviting someone did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invited {
    /// Pending until the invitee answers.
    Pending(Invite),
    /// The invitee had asked to join: it is a member now.
    Joined(Member),
}

/// An answered invitation; `member` is set when it was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteAnswer {
    pub invite: Invite,
    pub member: Option<Member>,
}

impl Db {
    /// An owner or admin (`by_user`) invites `user` to `group`. The
    /// invitation is pending until `user` answers it ([`Db::respond_invite`]):
    /// no one joins a group without asking or agreeing. A user who had asked
    /// to join is taken in at once (the invitation approves the request).
    /// Inviting again while pending answers the pending invitation. An
    /// inviter has at most `limits.max_pending_invites` pending at once
    /// (counted under a lock on its user row).
    pub async fn invite_member(&self, group: u64, user: u64, by_user: u64) -> Result<Invited> {
        let g = self.get_group(group).await?;
        self.require_approver(group, by_user, "invite members").await?;
        self.require_users(&[user]).await?;
        if self.role_of(group, user).await?.is_some() {
            return Err(Error::AlreadyMember { group, user });
        }
        let t = self.metrics.time("invite_member");
        let now = now_ms();
        let invited = t.finish(
            async {
                let mut tx = self.begin_write().await?;
                self.lock_row(&mut tx, "users", by_user as i64).await?;
                if accept_join_request(&mut tx, self.backend, group, user, by_user, now).await? {
                    self.add_member(&mut tx, group, user, MEMBER, now).await?;
                    sqlx::query(dialect::sql(
                        self.backend,
                        "DELETE FROM group_invites WHERE group_id = $1 AND user_id = $2",
                    ))
                    .bind(group as i64)
                    .bind(user as i64)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(None);
                }
                let pending = sqlx::query(dialect::sql(
                    self.backend,
                    "SELECT invited_by, created_at FROM group_invites WHERE group_id = $1 AND user_id = $2",
                ))
                .bind(group as i64)
                .bind(user as i64)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = pending {
                    return Ok(Some((
                        r.try_get::<i64, _>("invited_by")? as u64,
                        r.try_get("created_at")?,
                    )));
                }
                let (sent,): (i64,) = sqlx::query_as(dialect::sql(
                    self.backend,
                    "SELECT COUNT(*) FROM group_invites WHERE invited_by = $1",
                ))
                .bind(by_user as i64)
                .fetch_one(&mut *tx)
                .await?;
                let max = self.limits().max_pending_invites;
                if sent >= i64::from(max) {
                    return Err(self.limit_reached(
                        "pending_group_invites",
                        format!("user {by_user} has {sent} invitations waiting for an answer"),
                        max,
                    ));
                }
                sqlx::query(dialect::sql(
                    self.backend,
                    "INSERT INTO group_invites (group_id, user_id, invited_by, created_at) \
                     VALUES ($1, $2, $3, $4)",
                ))
                .bind(group as i64)
                .bind(user as i64)
                .bind(by_user as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some((by_user, now)))
            }
            .await,
        )?;
        Ok(match invited {
            Some((invited_by, created_at_ms)) => Invited::Pending(Invite {
                group: g,
                user,
                invited_by,
                created_at_ms,
            }),
            None => Invited::Joined(Member {
                user,
                role: MEMBER,
                joined_at_ms: now,
                name: self.get_user(user).await?.name,
            }),
        })
    }

    /// `user` accepts (joins, within the group's size cap) or declines its
    /// pending invitation to `group`; either way the invitation is gone. An
    /// invitation whose inviter is no longer an owner or admin there is
    /// void: it is deleted and answering it fails as if there were none.
    pub async fn respond_invite(&self, group: u64, user: u64, accept: bool) -> Result<InviteAnswer> {
        let g = self.get_group(group).await?;
        let t = self.metrics.time("respond_invite");
        let no_invite = || Error::NoPendingRequest {
            kind: "group invitation",
            from: group,
            to: user,
        };
        let (invite, joined_at_ms) = t.finish(
            async {
                let mut tx = self.begin_write().await?;
                // Read, then delete (no DELETE ... RETURNING on MySQL): of
                // two answers at once, the one whose delete finds no row
                // finds no invitation.
                let uid = sql_id("user", user)?;
                let row = sqlx::query(dialect::sql(
                    self.backend,
                    "SELECT invited_by, created_at FROM group_invites WHERE group_id = $1 AND user_id = $2",
                ))
                .bind(group as i64)
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Err(no_invite()) };
                let deleted = sqlx::query(dialect::sql(
                    self.backend,
                    "DELETE FROM group_invites WHERE group_id = $1 AND user_id = $2",
                ))
                .bind(group as i64)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
                if deleted.rows_affected() == 0 {
                    return Err(no_invite());
                }
                let invited_by = row.try_get::<i64, _>("invited_by")? as u64;
                let inviter_role: Option<(i16,)> = sqlx::query_as(dialect::sql(
                    self.backend,
                    "SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2",
                ))
                .bind(group as i64)
                .bind(invited_by as i64)
                .fetch_optional(&mut *tx)
                .await?;
                if !matches!(inviter_role, Some((r,)) if r >= ADMIN) {
                    tx.commit().await?;
                    return Err(no_invite());
                }
                let invite = Invite {
                    group: g,
                    user,
                    invited_by,
                    created_at_ms: row.try_get("created_at")?,
                };
                let now = now_ms();
                let member = if accept {
                    self.add_member(&mut tx, group, user, MEMBER, now).await?;
                    accept_join_request(&mut tx, self.backend, group, user, invited_by, now).await?;
                    Some(now)
                } else {
                    None
                };
                tx.commit().await?;
                Ok((invite, member))
            }
            .await,
        )?;
        let member = match joined_at_ms {
            Some(joined_at_ms) => Some(Member {
                user,
                role: MEMBER,
                joined_at_ms,
                name: self.get_user(user).await?.name,
            }),
            None => None,
        };
        Ok(InviteAnswer { invite, member })
    }

    /// The pending invitations of `user`, oldest first.
    pub async fn list_invites(&self, user: u64) -> Result<Vec<Invite>> {
        self.require_users(&[user]).await?;
        let t = self.metrics.time("list_invites");
        let rows = sqlx::query(dialect::sql(
            self.backend,
            "SELECT g.id, g.name, g.owner_id, g.created_at, i.invited_by, i.created_at AS invited_at \
             FROM group_invites i JOIN chat_groups g ON g.id = i.group_id \
             WHERE i.user_id = $1 ORDER BY i.created_at, g.id",
        ))
        .bind(user as i64)
        .fetch_all(&self.pool)
        .await;
        t.finish(rows)?
            .iter()
            .map(|r| {
                Ok(Invite {
                    group: group_from_row(r)?,
                    user,
                    invited_by: r.try_get::<i64, _>("invited_by")? as u64,
                    created_at_ms: r.try_get("invited_at")?,
                })
            })
            .collect()
    }
}

/// Marks `user`'s pending request to join `group` accepted by `by` at
/// `now` (an invitation answers it); true when there was one.
async fn accept_join_request(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    group: u64,
    user: u64,
    by: u64,
    now: i64,
) -> Result<bool> {
    let approved = sqlx::query(dialect::sql(
        backend,
        "UPDATE group_join_requests SET state = $1, decided_at = $2, decided_by = $3 \
         WHERE group_id = $4 AND user_id = $5 AND state = $6",
    ))
    .bind(ACCEPTED)
    .bind(now)
    .bind(by as i64)
    .bind(group as i64)
    .bind(user as i64)
    .bind(PENDING)
    .execute(&mut **tx)
    .await?;
    Ok(approved.rows_affected() == 1)
}
