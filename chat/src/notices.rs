//! The console's words for pushes other than messages: receipts, typing,
//! recalls, presence, friend and group events, with user and group names
//! and, where the push asks for an answer, the command that gives it.

use confab_client::proto::{FriendEvent, FriendEventKind, GroupEvent, GroupEventKind, PresenceChanged};
use confab_client::{Client, Event, Update};

use crate::names::Names;

/// What kind of notice `u` is and its line; None for a message or a push
/// the console does not show this way.
pub async fn describe(c: &Client, names: &mut Names, u: Update) -> Option<(&'static str, String)> {
    Some(match u {
        Update::Receipt(r) if r.reader == c.uid() => {
            let conv = names.conversation(c, &r.conversation_id).await;
            (
                "receipt",
                format!("(read {conv} up to {} on another device)", r.read_seq),
            )
        }
        Update::Receipt(r) => {
            let who = names.user(c, r.reader).await;
            let place = place(c, names, &r.conversation_id).await;
            ("receipt", format!("{who} read up to {}{place}", r.read_seq))
        }
        Update::Typing(t) => {
            let who = names.user(c, t.user_id).await;
            let place = place(c, names, &t.conversation_id).await;
            ("typing", format!("{who} is typing{place}"))
        }
        Update::Event(Event::Recalled(r)) => {
            let who = names.user(c, r.by).await;
            let place = place(c, names, &r.conversation_id).await;
            (
                "recall",
                format!("{who} recalled message {}{place}", r.message_id),
            )
        }
        Update::Presence(p) => ("presence", presence(c, names, &p).await),
        Update::Friend(f) => ("friend", friend_event(names, &f)),
        Update::Group(g) => ("group", group_event(c, names, &g).await),
        _ => return None,
    })
}

/// ` in #team` for a group's conversation, nothing for a 1:1 one (the
/// other user is already named).
async fn place(c: &Client, names: &mut Names, conversation: &str) -> String {
    if conversation.starts_with("g:") {
        format!(" in {}", names.conversation(c, conversation).await)
    } else {
        String::new()
    }
}

async fn presence(c: &Client, names: &mut Names, p: &PresenceChanged) -> String {
    let who = names.user(c, p.user_id).await;
    match (p.online, p.devices.len()) {
        (false, _) | (true, 0) => format!("{who} is offline"),
        (true, 1) => format!("{who} is online"),
        (true, n) => format!("{who} is online ({n} devices)"),
    }
}

fn friend_event(names: &mut Names, f: &FriendEvent) -> String {
    let user = f.user.clone().unwrap_or_default();
    names.note_user(user.user_id, &user.name);
    let who = &user.name;
    let note = if f.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.note)
    };
    match FriendEventKind::try_from(f.kind) {
        Ok(FriendEventKind::Requested) => {
            format!("{who} asks to be your friend{note}: /accept {who} or /decline {who}")
        }
        Ok(FriendEventKind::Accepted) => format!("{who} accepted: you are friends"),
        Ok(FriendEventKind::Declined) => format!("{who} declined your friend request"),
        Ok(FriendEventKind::Removed) => format!("{who} removed you from their friends"),
        _ => format!("friend event {} about {who}", f.kind),
    }
}

async fn group_event(c: &Client, names: &mut Names, g: &GroupEvent) -> String {
    names.note_group(g.group_id, &g.group_name);
    let user = g.user.clone().unwrap_or_default();
    names.note_user(user.user_id, &user.name);
    let group = format!("#{}", names.group(c, g.group_id).await);
    // The name to type in a command: a name of mine is unique, an id is.
    let arg = if g.group_name.is_empty() {
        g.group_id.to_string()
    } else {
        g.group_name.clone()
    };
    let who = if user.user_id == c.uid() {
        "you".to_owned()
    } else {
        user.name.clone()
    };
    let by = match g.by {
        0 => String::new(),
        b if b == c.uid() => "you".to_owned(),
        b => names.user(c, b).await,
    };
    let note = if g.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", g.note)
    };
    match GroupEventKind::try_from(g.kind) {
        Ok(GroupEventKind::JoinRequested) => {
            format!("{who} asks to join {group}{note}: /approve {arg} {who} or /deny {arg} {who}")
        }
        Ok(GroupEventKind::JoinApproved) => format!("{by} approved: you joined {group}"),
        Ok(GroupEventKind::JoinDenied) => format!("{by} denied your request to join {group}"),
        Ok(GroupEventKind::MemberJoined) => format!("{who} joined {group}"),
        Ok(GroupEventKind::MemberLeft) => format!("{who} left {group}"),
        Ok(GroupEventKind::MemberRemoved) => format!("{by} removed {who} from {group}"),
        Ok(GroupEventKind::AdminPromoted) => format!("{by} made {who} an admin of {group}"),
        Ok(GroupEventKind::GroupDeleted) => format!("{group} was deleted"),
        Ok(GroupEventKind::Invited) => format!(
            "{by} invites you to {group}: /accept-invite {} or /decline-invite {}",
            g.group_id, g.group_id
        ),
        Ok(GroupEventKind::InviteDeclined) => format!("{who} declined the invitation to {group}"),
        _ => format!("group event {} in {group}", g.kind),
    }
}
