//! Chat load from devices that behave like applications of the client
//! library under faults: a sender reconnects (to the other gateway) when an
//! answer is lost or refused for now, and the library sends its outbox
//! again as resends; a receiver reconnects when its connection closes and
//! catches up by sync. Messages are `{sender}-{k}`, each under the client
//! message id of the same text, so every check can name the message.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_client::proto::{self as pb};
use confab_client::{Client, Connection, DeviceKind, ErrorCode, Event, Unacked, answer_lost};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug)]
pub enum To {
    User(u64),
    Group(u64),
}

/// An answer that says "not now": the send was not stored, or may be
/// stored later; either way a resend settles it.
pub fn for_now(e: &confab_client::Error) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::Unavailable | ErrorCode::Busy | ErrorCode::RateLimited)
    )
}

/// Who sent message `body` (`{sender}-{k}`).
pub fn sender_of(body: &str) -> &str {
    body.rsplit_once('-').map_or(body, |(s, _)| s)
}

/// The number `k` of message `body` (`{sender}-{k}`).
pub fn number_of(body: &str) -> usize {
    body.rsplit_once('-')
        .and_then(|(_, k)| k.parse().ok())
        .unwrap_or(usize::MAX)
}

/// How long a sender's resume (with its resends and sync) may take before
/// it tries the other gateway.
const RESUME_WITHIN: Duration = Duration::from_secs(5);

/// One sending device.
pub struct Sender {
    pub name: String,
    pub to: To,
    pub client: Client,
    pub gateways: [String; 2],
    /// The gateway it is connected to (an index into `gateways`).
    pub at: usize,
    /// Reconnects so far.
    pub reconnects: usize,
    /// How long one message may take to be acknowledged, retries included.
    pub within: Duration,
}

impl Sender {
    /// `name`'s mobile device `{name}-s`, logged in at `gateways[at]`,
    /// sending to `to`.
    pub async fn login(name: &str, to: To, gateways: &[String; 2], at: usize, within: Duration) -> Self {
        let client = super::login(&gateways[at], name, &format!("{name}-s"), DeviceKind::Mobile).await;
        Sender {
            name: name.to_owned(),
            to,
            client,
            gateways: gateways.clone(),
            at,
            reconnects: 0,
            within,
        }
    }

    fn request(&self, key: &str) -> Unacked {
        match self.to {
            To::User(to_user) => Unacked::Direct(pb::SendRequest {
                to_user,
                body: key.into(),
                client_msg_id: key.into(),
                ..Default::default()
            }),
            To::Group(group_id) => Unacked::Group(pb::GroupSendRequest {
                group_id,
                body: key.into(),
                client_msg_id: key.into(),
                ..Default::default()
            }),
        }
    }

    /// Sends message `k` until it is acknowledged, as an application of the
    /// client library does: when the answer is lost (or the send is refused
    /// for now) it reconnects, to the other gateway, and the library sends
    /// the outbox again as resends. `abandon`: stop waiting for the first
    /// answer after this long, as if the connection broke.
    pub async fn send(&mut self, k: usize, abandon: Option<Duration>) -> pb::SendAck {
        let key = format!("{}-{k}", self.name);
        let deadline = Instant::now() + self.within;
        let to = self.to;
        let first = async {
            match to {
                To::User(to_user) => {
                    self.client
                        .send(pb::SendRequest {
                            to_user,
                            body: key.clone(),
                            client_msg_id: key.clone(),
                            ..Default::default()
                        })
                        .await
                }
                To::Group(gid) => self.client.group_send(gid, &key, &key).await,
            }
        };
        let answer = match abandon {
            Some(after) => tokio::time::timeout(after, first).await.ok(),
            None => Some(first.await),
        };
        match answer {
            Some(Ok(ack)) => return ack,
            Some(Err(e)) if !answer_lost(&e) && !for_now(&e) => panic!("{key} refused: {e}"),
            _ => {}
        }
        loop {
            assert!(
                Instant::now() < deadline,
                "{key} not acknowledged within {:?}",
                self.within
            );
            // A send refused for now left the outbox: it goes back in.
            if !self.client.outbox.pending().any(|u| u.client_msg_id() == key) {
                self.client.outbox.add(self.request(&key));
            }
            self.at = 1 - self.at;
            let conn = match Connection::connect(&self.gateways[self.at]).await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            self.reconnects += 1;
            // A frozen gateway accepts the connection and answers nothing.
            let back = tokio::time::timeout(RESUME_WITHIN, self.client.reconnect(conn))
                .await
                .unwrap_or(Err(confab_client::Error::Closed));
            match back {
                Ok(back) => {
                    return back
                        .acks
                        .into_iter()
                        .find(|a| a.client_msg_id == key)
                        .unwrap_or_else(|| panic!("{key}: the reconnect did not resend it"));
                }
                Err(e) if answer_lost(&e) || for_now(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{key} refused after a reconnect: {e}"),
            }
        }
    }
}

/// What a receiving device got, in arrival order.
pub type Got = Arc<Mutex<Vec<pb::Message>>>;

/// The device had `old_id` shown and learns it is `message` (the stored
/// copy of the same send): it still has the message once, in its place,
/// under the stored id. Replacing what it never had is a bug.
fn replace(device: &str, got: &Got, old_id: u64, message: pb::Message) {
    let mut got = got.lock().unwrap();
    let at = got
        .iter()
        .position(|m| m.message_id == old_id)
        .unwrap_or_else(|| panic!("{device}: {} replaces {old_id}, never shown", message.body));
    assert_eq!(got[at].body, message.body, "{device}: a copy with another text");
    got[at] = message;
}

/// A receiving device that stays: when its connection closes (its gateway
/// died, or stopped answering heartbeats) it resumes on the other gateway
/// and syncs, as an application of the client library does.
pub struct Roamer {
    pub name: String,
    pub client: Client,
    pub gateways: [String; 2],
    pub at: usize,
    pub reconnects: usize,
    /// Pushed copies replaced by the stored one ([`Event::Replaced`]).
    pub replaced: usize,
}

impl Roamer {
    /// Takes messages until `expected` is known and every message of it is
    /// in; then syncs once more and listens for a quiet second (what came
    /// twice would show). While the set is known but incomplete and nothing
    /// came for 3 s, it syncs (what was never pushed is delivered by sync).
    /// Gives up `within` after the set became known.
    pub async fn run(
        mut self,
        got: Got,
        expected: watch::Receiver<Option<HashSet<String>>>,
        within: Duration,
    ) -> Self {
        let have = |got: &Got, expected: &HashSet<String>| {
            let got = got.lock().unwrap();
            let bodies: HashSet<&str> = got.iter().map(|m| m.body.as_str()).collect();
            expected.iter().all(|b| bodies.contains(b.as_str()))
        };
        let mut known_at = None;
        let mut quiet_since = Instant::now();
        loop {
            let want = expected.borrow().clone();
            if let Some(want) = &want {
                let since = *known_at.get_or_insert_with(Instant::now);
                if have(&got, want) {
                    break;
                }
                assert!(
                    since.elapsed() < within,
                    "{}: not everything within {within:?}",
                    self.name
                );
                if quiet_since.elapsed() > Duration::from_secs(3) {
                    self.sync_into(&got).await;
                    quiet_since = Instant::now();
                }
            }
            match tokio::time::timeout(Duration::from_millis(500), self.client.next_event()).await {
                Ok(Some(Event::Message(m))) => {
                    got.lock().unwrap().push(m);
                    quiet_since = Instant::now();
                }
                Ok(Some(Event::Replaced { old_id, message })) => {
                    replace(&self.name, &got, old_id, message);
                    self.replaced += 1;
                }
                Ok(Some(Event::Kicked(k))) => panic!("{}: kicked {k:?}", self.name),
                Ok(Some(Event::Recalled(r))) => panic!("{}: recalled {r:?}", self.name),
                Ok(Some(Event::Closed(_)) | None) => self.roam(&got).await,
                Err(_) => {}
            }
        }
        self.sync_into(&got).await;
        // A quiet second; a connection that closes meanwhile (a gateway
        // that lost its lease while frozen) resumes elsewhere and syncs.
        let quiet_until = Instant::now() + Duration::from_secs(1);
        while let Ok(e) = tokio::time::timeout_at(quiet_until.into(), self.client.next_event()).await {
            match e {
                Some(Event::Message(m)) => got.lock().unwrap().push(m),
                Some(Event::Replaced { old_id, message }) => {
                    replace(&self.name, &got, old_id, message);
                    self.replaced += 1;
                }
                Some(Event::Closed(_)) | None => self.roam(&got).await,
                Some(other) => panic!("{}: unexpected {other:?}", self.name),
            }
        }
        self
    }

    /// A sync; a lost answer or a refusal for now moves to the other gateway
    /// (whose resume syncs too).
    async fn sync_into(&mut self, got: &Got) {
        match tokio::time::timeout(Duration::from_secs(5), self.client.sync()).await {
            Ok(Ok(msgs)) => got.lock().unwrap().extend(msgs),
            Ok(Err(e)) if answer_lost(&e) || for_now(&e) => self.roam(got).await,
            Ok(Err(e)) => panic!("{}: sync: {e}", self.name),
            Err(_) => self.roam(got).await,
        }
    }

    /// Resumes on the other gateway (then this one, and so on) until a
    /// resume and its sync pass (60 s at most).
    async fn roam(&mut self, got: &Got) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "{}: no gateway took it back within 60 s",
                self.name
            );
            self.at = 1 - self.at;
            let Ok(conn) = Connection::connect(&self.gateways[self.at]).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            self.reconnects += 1;
            match tokio::time::timeout(Duration::from_secs(5), self.client.reconnect(conn)).await {
                Ok(Ok(back)) => {
                    got.lock().unwrap().extend(back.messages);
                    return;
                }
                Ok(Err(e)) if answer_lost(&e) || for_now(&e) => {}
                Ok(Err(e)) => panic!("{}: resume: {e}", self.name),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
