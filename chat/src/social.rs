//! The verbs of friends and groups, for the one-shot subcommands and the
//! console alike: each runs one request and prints the result (one JSON
//! document per line with --json), users and groups by name.

use confab_client::Client;
use confab_client::proto::{FriendInfo, FriendRequestInfo, GroupInfo, GroupRole, MemberInfo, UserInfo};
use serde_json::{Value, json};

use crate::cli::{Command, GroupRef};
use crate::error::{Error, Result};
use crate::names::Names;
use crate::output::Output;

fn user_json(u: &Option<UserInfo>) -> Value {
    let u = u.clone().unwrap_or_default();
    json!({"user_id": u.user_id, "name": u.name})
}

fn name_of(u: &Option<UserInfo>) -> String {
    u.as_ref().map(|u| u.name.clone()).unwrap_or_default()
}

fn group_json(g: &GroupInfo) -> Value {
    json!({"group_id": g.group_id, "name": g.name, "owner": g.owner, "conversation_id": g.conversation_id})
}

fn friend_json(f: &FriendInfo) -> Value {
    let devices: Vec<Value> = f
        .devices
        .iter()
        .map(
            |d| json!({"device_id": d.device_id, "device_kind": d.device_kind, "login_at_ms": d.login_at_ms}),
        )
        .collect();
    let u = f.user.clone().unwrap_or_default();
    json!({"user_id": u.user_id, "name": u.name, "online": f.online, "devices": devices})
}

fn request_json(r: &FriendRequestInfo, direction: &str) -> Value {
    json!({"request": direction, "from": user_json(&r.from), "to": user_json(&r.to), "note": r.note})
}

fn role_name(role: i32) -> &'static str {
    match GroupRole::try_from(role) {
        Ok(GroupRole::Owner) => "owner",
        Ok(GroupRole::Admin) => "admin",
        Ok(GroupRole::Member) => "member",
        _ => "unknown",
    }
}

fn member_json(m: &MemberInfo) -> Value {
    let u = m.user.clone().unwrap_or_default();
    json!({"user_id": u.user_id, "name": u.name, "role": role_name(m.role)})
}

/// The id of user `name`.
async fn uid_of(c: &Client, name: &str) -> Result<u64> {
    Ok(c.lookup_user(name).await?.user_id)
}

fn ok(out: &mut Output, what: String) {
    out.result(json!({"ok": true, "done": what}), || what.clone());
}

/// The id of group `g` and how to show it (`#name`).
async fn group_of(c: &Client, names: &mut Names, g: &GroupRef) -> Result<(u64, String)> {
    let gid = names.group_id(c, g).await?;
    Ok((gid, format!("#{}", names.group(c, gid).await)))
}

/// Runs a friend or group verb as `c`'s user.
pub async fn run(c: &mut Client, names: &mut Names, out: &mut Output, cmd: Command) -> Result<()> {
    match cmd {
        Command::Search { prefix, after, limit } => {
            for u in c.search_users(&prefix, &after, limit).await? {
                out.result(json!({"user_id": u.user_id, "name": u.name}), || {
                    format!("{} (id {})", u.name, u.user_id)
                });
            }
        }
        Command::Friends => {
            for f in c.friends().await? {
                let state = if f.online {
                    format!("online on {} device(s)", f.devices.len())
                } else {
                    "offline".to_owned()
                };
                out.result(friend_json(&f), || format!("{} ({state})", name_of(&f.user)));
            }
            let pending = c.friend_requests().await?;
            for r in &pending.incoming {
                out.result(request_json(r, "incoming"), || {
                    format!("request from {}: {}", name_of(&r.from), r.note)
                });
            }
            for r in &pending.outgoing {
                out.result(request_json(r, "outgoing"), || {
                    format!("request to {} (pending)", name_of(&r.to))
                });
            }
        }
        Command::AddFriend { who: user, note } => {
            let r = c.add_friend(&user, &note).await?;
            let what = if r.became_friends {
                format!("{user} had asked too: friends now")
            } else {
                format!("asked {user} for friendship")
            };
            out.result(json!({"ok": true, "became_friends": r.became_friends}), || what);
        }
        Command::Accept { who: user } => {
            c.accept_friend(&user).await?;
            ok(out, format!("{user} is a friend now"));
        }
        Command::Decline { who: user } => {
            c.decline_friend(&user).await?;
            ok(out, format!("declined {user}"));
        }
        Command::RemoveFriend { who: user } => {
            c.remove_friend(&user).await?;
            ok(out, format!("removed {user}"));
        }
        Command::Groups => {
            for g in c.groups().await? {
                names.note_group(g.group_id, &g.name);
                out.result(group_json(&g), || format!("#{} (id {})", g.name, g.group_id));
            }
        }
        Command::CreateGroup { name } => {
            let g = c.create_group(&name).await?;
            names.note_group(g.group_id, &g.name);
            out.result(group_json(&g), || {
                format!("created #{} (id {})", g.name, g.group_id)
            });
        }
        Command::Invite { group, who: user } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            c.invite(gid, &user).await?;
            ok(out, format!("invited {user} to {gname}"));
        }
        Command::Invites => {
            for i in c.invites().await? {
                let group = i.group.unwrap_or_default();
                names.note_group(group.group_id, &group.name);
                let by = user_json(&i.by);
                out.result(
                    json!({"group": group_json(&group), "by": by, "created_at_ms": i.created_at_ms}),
                    || {
                        format!(
                            "#{} (id {}), invited by {}",
                            group.name,
                            group.group_id,
                            name_of(&i.by)
                        )
                    },
                );
            }
        }
        Command::AcceptInvite { group } => {
            let (gid, _) = group_of(c, names, &group).await?;
            let g = c.accept_invite(gid).await?;
            names.note_group(g.group_id, &g.name);
            out.result(group_json(&g), || {
                format!("joined #{} (id {})", g.name, g.group_id)
            });
        }
        Command::DeclineInvite { group } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            c.decline_invite(gid).await?;
            ok(out, format!("declined the invitation to {gname}"));
        }
        Command::Join { group, note } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            c.join_group(gid, &note).await?;
            ok(out, format!("asked to join {gname}"));
        }
        Command::Approve { group, who: user } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            let uid = uid_of(c, &user).await?;
            c.approve(gid, uid).await?;
            ok(out, format!("{user} joined {gname}"));
        }
        Command::Deny { group, who: user } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            let uid = uid_of(c, &user).await?;
            c.deny(gid, uid).await?;
            ok(out, format!("denied {user} in {gname}"));
        }
        Command::Leave { group } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            c.leave_group(gid).await?;
            ok(out, format!("left {gname}"));
        }
        Command::Kick { group, who: user } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            let uid = uid_of(c, &user).await?;
            c.remove_member(gid, uid).await?;
            ok(out, format!("removed {user} from {gname}"));
        }
        Command::Promote { group, who: user } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            let uid = uid_of(c, &user).await?;
            c.promote(gid, uid).await?;
            ok(out, format!("{user} is an admin of {gname}"));
        }
        Command::DeleteGroup { group } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            c.delete_group(gid).await?;
            ok(out, format!("deleted {gname}"));
        }
        Command::Members { group } => {
            let (gid, _) = group_of(c, names, &group).await?;
            let members = c.members(gid).await?;
            let me = c.uid();
            let approver = members.iter().any(|m| {
                m.user.as_ref().is_some_and(|u| u.user_id == me) && m.role >= GroupRole::Admin as i32
            });
            for m in &members {
                out.result(member_json(m), || {
                    format!("{} ({})", name_of(&m.user), role_name(m.role))
                });
            }
            if approver {
                for r in c.join_requests(gid).await? {
                    let u = user_json(&r.user);
                    out.result(json!({"join_request": u, "note": r.note}), || {
                        format!("wants to join: {} ({})", name_of(&r.user), r.note)
                    });
                }
            }
        }
        Command::GroupSend { group, text } => {
            let (gid, gname) = group_of(c, names, &group).await?;
            let ack = c.group_send(gid, &text, "").await?;
            out.result(
                json!({"message_id": ack.message_id, "conversation_id": ack.conversation_id}),
                || format!("sent to {gname} (message {})", ack.message_id),
            );
        }
        other => return Err(Error::Usage(format!("not a friend or group command: {other:?}"))),
    }
    Ok(())
}
