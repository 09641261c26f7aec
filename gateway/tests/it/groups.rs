//! Groups across two gateways: the whole life cycle with its pushes,
//! invitations that wait for the invitee, and group messages: every online member once (both gateways, other devices
//! of the sender), offline members on reconnect, history pages, nothing
//! after a removal or the group's deletion.

use std::time::Duration;

use confab_client::proto::{GroupEventKind, GroupRole};
use confab_client::{Client, DeviceKind, ErrorCode};

use crate::friends::{WAIT, code, group_event};
use crate::harness::{Cluster, assert_quiet, login, receive, register};

fn role_of(members: &[confab_client::proto::MemberInfo], uid: u64) -> Option<i32> {
    members
        .iter()
        .find(|m| m.user.as_ref().is_some_and(|u| u.user_id == uid))
        .map(|m| m.role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_life_cycle_with_pushes() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let olga_id = register(&g1, "olga").await;
    let ann_id = register(&g2, "ann").await;
    let ben_id = register(&g1, "ben").await;
    let cat_id = register(&g2, "cat").await;
    let mut olga = login(&g1, "olga", "olga-phone", DeviceKind::Mobile).await;
    let mut ann = login(&g2, "ann", "ann-phone", DeviceKind::Mobile).await;
    let mut ben = login(&g1, "ben", "ben-phone", DeviceKind::Mobile).await;
    let mut cat = login(&g2, "cat", "cat-phone", DeviceKind::Mobile).await;

    let g = olga.create_group("rustaceans").await.expect("create");
    assert_eq!(
        (g.owner, g.conversation_id.as_str()),
        (olga_id, format!("g:{}", g.group_id).as_str())
    );
    let gid = g.group_id;

    // ann asks (pushed to the owner), olga approves (pushed to ann; the
    // group sees a member join).
    ann.join_group(gid, "let me in").await.expect("join request");
    let e = group_event(&mut olga, GroupEventKind::JoinRequested).await;
    assert_eq!((e.group_id, e.note.as_str()), (gid, "let me in"));
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(ann_id));
    let pending = olga.join_requests(gid).await.expect("requests");
    assert_eq!(pending.len(), 1);
    olga.approve(gid, ann_id).await.expect("approve");
    let e = group_event(&mut ann, GroupEventKind::JoinApproved).await;
    assert_eq!(
        (e.group_id, e.by, e.group_name.as_str()),
        (gid, olga_id, "rustaceans")
    );
    let e = group_event(&mut ann, GroupEventKind::MemberJoined).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(ann_id));

    // ben asks and is denied.
    ben.join_group(gid, "").await.expect("join request");
    group_event(&mut olga, GroupEventKind::JoinRequested).await;
    olga.deny(gid, ben_id).await.expect("deny");
    group_event(&mut ben, GroupEventKind::JoinDenied).await;
    let e = ben.members(gid).await.expect_err("not a member");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));

    // cat is invited, a member once it accepts; ann (other gateway) sees
    // it join, by olga's invitation.
    olga.invite(gid, "cat").await.expect("invite");
    let e = group_event(&mut cat, GroupEventKind::Invited).await;
    assert_eq!(
        (e.group_id, e.by, e.group_name.as_str()),
        (gid, olga_id, "rustaceans")
    );
    let e = cat.members(gid).await.expect_err("not a member before accepting");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    let invites = cat.invites().await.expect("invites");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].by.as_ref().map(|u| u.user_id), Some(olga_id));
    assert_eq!(invites[0].group.as_ref().map(|g| g.group_id), Some(gid));
    assert_eq!(cat.accept_invite(gid).await.expect("accept").group_id, gid);
    assert!(cat.invites().await.expect("invites").is_empty());
    let e = group_event(&mut ann, GroupEventKind::MemberJoined).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(cat_id));
    assert_eq!(e.by, olga_id);

    // ann becomes an admin and approves ben's second request.
    olga.promote(gid, ann_id).await.expect("promote");
    let e = group_event(&mut cat, GroupEventKind::AdminPromoted).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(ann_id));
    ben.join_group(gid, "again").await.expect("join again");
    group_event(&mut ann, GroupEventKind::JoinRequested).await;
    group_event(&mut olga, GroupEventKind::JoinRequested).await;
    ann.approve(gid, ben_id).await.expect("an admin approves");
    group_event(&mut ben, GroupEventKind::JoinApproved).await;
    let members = ben.members(gid).await.expect("members");
    assert_eq!(members.len(), 4);
    assert_eq!(role_of(&members, olga_id), Some(GroupRole::Owner as i32));
    assert_eq!(role_of(&members, ann_id), Some(GroupRole::Admin as i32));
    assert_eq!(role_of(&members, ben_id), Some(GroupRole::Member as i32));

    // An admin removes a plain member, not the owner; cat leaves.
    let e = ann.remove_member(gid, olga_id).await.expect_err("not the owner");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    ann.remove_member(gid, ben_id).await.expect("remove ben");
    let e = group_event(&mut ben, GroupEventKind::MemberRemoved).await;
    assert_eq!((e.by, e.user.as_ref().map(|u| u.user_id)), (ann_id, Some(ben_id)));
    cat.leave_group(gid).await.expect("leave");
    let e = group_event(&mut olga, GroupEventKind::MemberLeft).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(cat_id));
    let e = olga.leave_group(gid).await.expect_err("the owner cannot leave");
    assert_eq!(code(e), Some(ErrorCode::FailedPrecondition));

    assert_eq!(olga.groups().await.expect("groups").len(), 1);
    assert!(cat.groups().await.expect("groups").is_empty());
    assert!(ben.groups().await.expect("groups").is_empty());
    let members = olga.members(gid).await.expect("members");
    assert_eq!(members.len(), 2);

    // Delete: every member is told; the group can no longer be read or
    // sent to.
    ann.group_send(gid, "before the end", "").await.expect("send");
    let e = ann.delete_group(gid).await.expect_err("only the owner deletes");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    olga.delete_group(gid).await.expect("delete");
    let e = group_event(&mut ann, GroupEventKind::GroupDeleted).await;
    assert_eq!((e.group_id, e.by), (gid, olga_id));
    for c in [&mut olga, &mut ann] {
        let e = c.group_send(gid, "hello?", "").await.expect_err("deleted");
        assert_eq!(code(e), Some(ErrorCode::Forbidden));
        let e = c.group_history(gid, 0, 10).await.expect_err("deleted");
        assert_eq!(code(e), Some(ErrorCode::Forbidden));
        let e = c.members(gid).await.expect_err("deleted");
        assert_eq!(code(e), Some(ErrorCode::Forbidden));
    }
    assert!(olga.groups().await.expect("groups").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_reach_every_member_once_and_offline_ones_on_reconnect() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let gws = [g1.clone(), g2.clone()];
    register(&g1, "host").await;
    let names: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    for n in &names {
        register(&g1, n).await;
    }
    register(&g1, "late").await;
    let mut host = login(&g1, "host", "host-phone", DeviceKind::Mobile).await;
    let mut host_desk = login(&g2, "host", "host-desk", DeviceKind::Desktop).await;
    let gid = host.create_group("fanout").await.expect("create").group_id;
    for n in names.iter().chain(std::iter::once(&"late".to_owned())) {
        host.invite(gid, n).await.expect("invite");
    }
    // Members spread over both gateways; "late" accepts, then goes offline.
    let mut members: Vec<Client> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = login(&gws[i % 2], n, &format!("{n}-dev"), DeviceKind::Mobile).await;
        c.accept_invite(gid).await.expect("accept");
        members.push(c);
    }
    let mut late = login(&g2, "late", "late-dev", DeviceKind::Mobile).await;
    late.accept_invite(gid).await.expect("accept");
    late.logout().await.expect("late goes offline");
    drop(late);
    for m in &mut members {
        assert!(m.sync().await.expect("sync").is_empty());
    }
    host.sync().await.expect("sync");
    host_desk.sync().await.expect("sync");

    let mut sent = Vec::new();
    for i in 0..5 {
        let ack = host
            .group_send(gid, &format!("news {i}"), &format!("c{i}"))
            .await
            .expect("group send");
        assert_eq!(ack.conversation_id, format!("g:{gid}"));
        assert_eq!(ack.to_user, 0);
        sent.push(ack.message_id);
    }
    for (i, m) in members.iter_mut().enumerate() {
        let got = receive(m, 5, WAIT).await;
        let ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
        assert_eq!(ids, sent, "member {i} got every message once, in order");
        assert_quiet(m, Duration::from_millis(300)).await;
    }
    let copies = receive(&mut host_desk, 5, WAIT).await;
    assert_eq!(copies.len(), 5, "the sender's other device got copies");
    assert_quiet(&mut host, Duration::from_millis(300)).await;

    // A member replies; the offline member catches up on reconnect.
    let reply = members[3]
        .group_send(gid, "thanks", "r1")
        .await
        .expect("reply")
        .message_id;
    sent.push(reply);
    for (i, m) in members.iter_mut().enumerate() {
        if i != 3 {
            let got = receive(m, 1, WAIT).await;
            assert_eq!(got.first().map(|m| m.message_id), Some(reply));
        }
    }
    let mut late = login(&g2, "late", "late-dev", DeviceKind::Mobile).await;
    let mut got = late.sync().await.expect("sync");
    let need = sent.len().saturating_sub(got.len());
    got.extend(receive(&mut late, need, WAIT).await);
    assert_eq!(got.iter().map(|m| m.message_id).collect::<Vec<_>>(), sent);
    assert_eq!(
        got.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<u64>>(),
        "one sequence for the group, in send order"
    );
    let page = late.group_history(gid, 0, 4).await.expect("history");
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![6, 5, 4, 3]);
    let page = late.group_history(gid, 3, 4).await.expect("older");
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2, 1]);

    // A removed member gets nothing more and reads nothing.
    let m0 = members[0].uid();
    host.remove_member(gid, m0).await.expect("remove");
    host.group_send(gid, "after the removal", "").await.expect("send");
    assert_eq!(receive(&mut members[1], 1, WAIT).await.len(), 1);
    assert_quiet(&mut members[0], Duration::from_millis(500)).await;
    let e = members[0].group_history(gid, 0, 10).await.expect_err("removed");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
}

fn chat(gw: &str, user: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(crate::harness::workspace_bin("confab-chat"))
        .args(["--gateway", gw, "--user", user, "--password", "pw", "--json"])
        .args(args)
        .env_remove("CONFAB_BIN_DIR")
        .output()
        .expect("run confab-chat");
    assert!(
        out.status.success(),
        "confab-chat {args:?} as {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_friend_and_group_commands() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    for n in ["pia", "quin", "rex"] {
        register(&g, n).await;
    }
    assert_eq!(chat(&g, "pia", &["search", "qu"])[0]["name"], "quin");
    chat(&g, "pia", &["add-friend", "quin", "--note", "hi"]);
    chat(&g, "pia", &["add-friend", "rex"]);
    let quin = chat(&g, "quin", &["friends"]);
    assert_eq!(quin[0]["request"], "incoming");
    chat(&g, "quin", &["accept", "pia"]);
    chat(&g, "rex", &["decline", "pia"]);
    let friends = chat(&g, "pia", &["friends"]);
    assert_eq!(friends.len(), 1, "{friends:?}");
    assert_eq!(
        (friends[0]["name"].as_str(), friends[0]["online"].as_bool()),
        (Some("quin"), Some(false))
    );

    let group = chat(&g, "pia", &["create-group", "cli crew"]);
    let gid = group[0]["group_id"].as_u64().expect("group id").to_string();
    chat(&g, "quin", &["join", &gid, "--note", "me too"]);
    let members = chat(&g, "pia", &["members", &gid]);
    assert!(
        members.iter().any(|d| d["join_request"]["name"] == "quin"),
        "{members:?}"
    );
    chat(&g, "pia", &["approve", &gid, "quin"]);
    chat(&g, "pia", &["invite", &gid, "rex"]);
    let invites = chat(&g, "rex", &["invites"]);
    assert_eq!(invites.len(), 1, "{invites:?}");
    assert_eq!(invites[0]["by"]["name"], "pia");
    chat(&g, "rex", &["accept-invite", &gid]);
    assert!(chat(&g, "rex", &["invites"]).is_empty());
    chat(&g, "pia", &["promote", &gid, "quin"]);
    let members = chat(&g, "quin", &["members", &gid]);
    let roles: Vec<(&str, &str)> = members
        .iter()
        .filter_map(|m| Some((m["name"].as_str()?, m["role"].as_str()?)))
        .collect();
    assert_eq!(
        roles,
        vec![("pia", "owner"), ("quin", "admin"), ("rex", "member")]
    );
    chat(&g, "quin", &["group-send", &gid, "hello crew"]);
    // Acknowledged is not yet written: the history shows it once stored.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let history = loop {
        let history = chat(&g, "rex", &["group-history", &gid]);
        if !history.is_empty() || std::time::Instant::now() > deadline {
            break history;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        history.first().map(|h| &h["body"]),
        Some(&serde_json::json!("hello crew"))
    );
    assert_eq!(chat(&g, "rex", &["history", "--group", &gid]).len(), 1);
    assert_eq!(chat(&g, "rex", &["groups"]).len(), 1);
    chat(&g, "quin", &["kick", &gid, "rex"]);
    assert!(chat(&g, "rex", &["groups"]).is_empty());
    chat(&g, "quin", &["leave", &gid]);
    chat(&g, "pia", &["delete-group", &gid]);
    assert!(chat(&g, "pia", &["groups"]).is_empty());
    chat(&g, "pia", &["remove-friend", "quin"]);
    assert!(chat(&g, "pia", &["friends"]).is_empty());
}

/// Gateway 1 polls the live gateway list once an hour, so it has not seen
/// gateway 2 register: a deletion through gateway 1 must still reach
/// gateway 2's member cache (the list is read from the routers at the
/// change), or gateway 2 would keep accepting messages to a deleted group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_a_gateway_registered_since_the_last_poll() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(1, &[("CONFAB_SOCIAL__GATEWAY_POLL_MS", "3600000")])
        .await;
    cluster.start_gateway(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "olga").await;
    register(&g2, "ann").await;
    let olga = login(&g1, "olga", "olga-phone", DeviceKind::Mobile).await;
    let mut ann = login(&g2, "ann", "ann-phone", DeviceKind::Mobile).await;
    let gid = olga.create_group("late news").await.expect("create").group_id;
    olga.invite(gid, "ann").await.expect("invite");
    ann.accept_invite(gid).await.expect("accept");
    // Gateway 2 now caches the member list.
    ann.group_send(gid, "hello", "").await.expect("send");
    olga.delete_group(gid).await.expect("delete");
    let e = ann
        .group_send(gid, "still there?", "")
        .await
        .expect_err("deleted");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
}

/// An invitation puts no one in a group: the invitee reads and receives
/// nothing of it until it accepts, a decline tells the inviter, an
/// invitation of someone who asked to join takes it in at once, and an
/// invitation by an admin who was removed since is void.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_waits_for_the_invitee() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let olga_id = register(&g1, "olga").await;
    let ann_id = register(&g1, "ann").await;
    let ben_id = register(&g2, "ben").await;
    let dan_id = register(&g2, "dan").await;
    register(&g2, "eve").await;
    let mut olga = login(&g1, "olga", "olga-phone", DeviceKind::Mobile).await;
    let ann = login(&g1, "ann", "ann-phone", DeviceKind::Mobile).await;
    let mut ben = login(&g2, "ben", "ben-phone", DeviceKind::Mobile).await;
    let mut dan = login(&g2, "dan", "dan-phone", DeviceKind::Mobile).await;
    let eve = login(&g2, "eve", "eve-phone", DeviceKind::Mobile).await;
    let gid = olga.create_group("invite only").await.expect("create").group_id;

    // ben, a stranger to olga, is invited: nothing of the group reaches him.
    olga.invite(gid, "ben").await.expect("invite ben");
    group_event(&mut ben, GroupEventKind::Invited).await;
    olga.group_send(gid, "members only", "").await.expect("send");
    assert_quiet(&mut ben, Duration::from_millis(500)).await;
    let e = ben.group_history(gid, 0, 10).await.expect_err("not a member");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    let e = ben
        .group_send(gid, "let me in", "")
        .await
        .expect_err("not a member");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    // He declines: olga is told, and there is nothing left to accept.
    ben.decline_invite(gid).await.expect("decline");
    let e = group_event(&mut olga, GroupEventKind::InviteDeclined).await;
    assert_eq!(
        (e.user.as_ref().map(|u| u.user_id), e.by),
        (Some(ben_id), olga_id)
    );
    let e = ben.accept_invite(gid).await.expect_err("declined");
    assert_eq!(code(e), Some(ErrorCode::FailedPrecondition));
    assert_eq!(olga.members(gid).await.expect("members").len(), 1);

    // dan asked to join: olga's invitation takes him in at once.
    dan.join_group(gid, "me please").await.expect("ask");
    olga.invite(gid, "dan").await.expect("invite dan");
    let e = group_event(&mut dan, GroupEventKind::MemberJoined).await;
    assert_eq!(
        (e.user.as_ref().map(|u| u.user_id), e.by),
        (Some(dan_id), olga_id)
    );
    assert!(dan.invites().await.expect("invites").is_empty());

    // ann, an admin, invites eve, then is removed: the invitation is void.
    olga.invite(gid, "ann").await.expect("invite ann");
    ann.accept_invite(gid).await.expect("ann accepts");
    olga.promote(gid, ann_id).await.expect("ann admin");
    ann.invite(gid, "eve").await.expect("an admin invites");
    olga.remove_member(gid, ann_id).await.expect("remove ann");
    let e = eve.accept_invite(gid).await.expect_err("void");
    assert_eq!(code(e), Some(ErrorCode::FailedPrecondition));
    let members = olga.members(gid).await.expect("members");
    let ids: Vec<u64> = members
        .iter()
        .filter_map(|m| m.user.as_ref().map(|u| u.user_id))
        .collect();
    assert_eq!(ids, vec![olga_id, dan_id], "only the owner and dan");
}
