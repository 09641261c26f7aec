//! One-shot subcommands for friends and groups: each logs in, runs one
//! request and prints the result (one JSON document per line with --json).

use confab_client::Client;
use confab_client::proto::{FriendInfo, FriendRequestInfo, GroupInfo, GroupRole, MemberInfo, UserInfo};
use serde_json::{Value, json};

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::output::print;
use crate::session::login;

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

fn ok(cli: &Cli, what: String) {
    print(cli, json!({"ok": true, "done": what}), || what.clone());
}

pub async fn run(cli: &Cli, cmd: Command) -> Result<()> {
    let mut c = login(cli).await?;
    match cmd {
        Command::Search { prefix, after, limit } => {
            for u in c.search_users(&prefix, &after, limit).await? {
                print(cli, json!({"user_id": u.user_id, "name": u.name}), || {
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
                print(cli, friend_json(&f), || format!("{} ({state})", name_of(&f.user)));
            }
            let pending = c.friend_requests().await?;
            for r in &pending.incoming {
                print(cli, request_json(r, "incoming"), || {
                    format!("request from {}: {}", name_of(&r.from), r.note)
                });
            }
            for r in &pending.outgoing {
                print(cli, request_json(r, "outgoing"), || {
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
            print(
                cli,
                json!({"ok": true, "became_friends": r.became_friends}),
                || what,
            );
        }
        Command::Accept { who: user } => {
            c.accept_friend(&user).await?;
            ok(cli, format!("{user} is a friend now"));
        }
        Command::Decline { who: user } => {
            c.decline_friend(&user).await?;
            ok(cli, format!("declined {user}"));
        }
        Command::RemoveFriend { who: user } => {
            c.remove_friend(&user).await?;
            ok(cli, format!("removed {user}"));
        }
        Command::Groups => {
            for g in c.groups().await? {
                print(cli, group_json(&g), || format!("{} (id {})", g.name, g.group_id));
            }
        }
        Command::CreateGroup { name } => {
            let g = c.create_group(&name).await?;
            print(cli, group_json(&g), || {
                format!("created {} (id {})", g.name, g.group_id)
            });
        }
        Command::Invite { group, who: user } => {
            c.invite(group, &user).await?;
            ok(cli, format!("invited {user} to group {group}"));
        }
        Command::Invites => {
            for i in c.invites().await? {
                let group = i.group.unwrap_or_default();
                let by = user_json(&i.by);
                print(
                    cli,
                    json!({"group": group_json(&group), "by": by, "created_at_ms": i.created_at_ms}),
                    || {
                        format!(
                            "{} (id {}), invited by {}",
                            group.name,
                            group.group_id,
                            name_of(&i.by)
                        )
                    },
                );
            }
        }
        Command::AcceptInvite { group } => {
            let g = c.accept_invite(group).await?;
            print(cli, group_json(&g), || {
                format!("joined {} (id {})", g.name, g.group_id)
            });
        }
        Command::DeclineInvite { group } => {
            c.decline_invite(group).await?;
            ok(cli, format!("declined the invitation to group {group}"));
        }
        Command::Join { group, note } => {
            c.join_group(group, &note).await?;
            ok(cli, format!("asked to join group {group}"));
        }
        Command::Approve { group, who: user } => {
            let uid = uid_of(&c, &user).await?;
            c.approve(group, uid).await?;
            ok(cli, format!("{user} joined group {group}"));
        }
        Command::Deny { group, who: user } => {
            let uid = uid_of(&c, &user).await?;
            c.deny(group, uid).await?;
            ok(cli, format!("denied {user} in group {group}"));
        }
        Command::Leave { group } => {
            c.leave_group(group).await?;
            ok(cli, format!("left group {group}"));
        }
        Command::Kick { group, who: user } => {
            let uid = uid_of(&c, &user).await?;
            c.remove_member(group, uid).await?;
            ok(cli, format!("removed {user} from group {group}"));
        }
        Command::Promote { group, who: user } => {
            let uid = uid_of(&c, &user).await?;
            c.promote(group, uid).await?;
            ok(cli, format!("{user} is an admin of group {group}"));
        }
        Command::DeleteGroup { group } => {
            c.delete_group(group).await?;
            ok(cli, format!("deleted group {group}"));
        }
        Command::Members { group } => {
            let members = c.members(group).await?;
            let me = c.uid();
            let approver = members.iter().any(|m| {
                m.user.as_ref().is_some_and(|u| u.user_id == me) && m.role >= GroupRole::Admin as i32
            });
            for m in &members {
                print(cli, member_json(m), || {
                    format!("{} ({})", name_of(&m.user), role_name(m.role))
                });
            }
            if approver {
                for r in c.join_requests(group).await? {
                    let u = user_json(&r.user);
                    print(cli, json!({"join_request": u, "note": r.note}), || {
                        format!("wants to join: {} ({})", name_of(&r.user), r.note)
                    });
                }
            }
        }
        Command::GroupSend { group, text } => {
            let ack = c.group_send(group, &text, "").await?;
            print(
                cli,
                json!({"message_id": ack.message_id, "conversation_id": ack.conversation_id}),
                || format!("sent to group {group} (message {})", ack.message_id),
            );
        }
        other => return Err(Error::Usage(format!("not a friend or group command: {other:?}"))),
    }
    Ok(())
}
