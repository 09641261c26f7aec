//! Sends whose ack has not arrived: kept until it does, or until the
//! gateway refuses them for good, and sent again (marked `resend`) after a
//! reconnect. Every send carries a client message id, unique per sender
//! (made here when the application gives none): the gateway stores a
//! resend only if the first attempt never was, and answers it with the
//! first attempt's ack.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, ErrorCode};

use crate::error::Error;

/// A send awaiting its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unacked {
    Direct(pb::SendRequest),
    Group(pb::GroupSendRequest),
}

impl Unacked {
    pub fn client_msg_id(&self) -> &str {
        match self {
            Unacked::Direct(r) => &r.client_msg_id,
            Unacked::Group(r) => &r.client_msg_id,
        }
    }

    /// Whom it goes to: `u:{id}` or `n:{name}` for a user, `g:{id}` for a
    /// group (the key of [`crate::Client`]'s last send per conversation).
    pub fn target(&self) -> String {
        match self {
            Unacked::Direct(r) if r.to_user != 0 => format!("u:{}", r.to_user),
            Unacked::Direct(r) => format!("n:{}", r.to_name),
            Unacked::Group(r) => format!("g:{}", r.group_id),
        }
    }

    /// The request again, marked as a resend.
    pub(crate) fn resend(&self) -> Body {
        match self.clone() {
            Unacked::Direct(r) => Body::Send(pb::SendRequest { resend: true, ..r }),
            Unacked::Group(r) => Body::GroupSend(pb::GroupSendRequest { resend: true, ..r }),
        }
    }
}

/// Whether a failed request may have reached the gateway without its
/// answer reaching us (the connection broke, or no answer came in time):
/// such a send is kept to be sent again. Any answer from the gateway is
/// final: a refused send was not stored.
pub fn answer_lost(e: &Error) -> bool {
    matches!(e, Error::Closed | Error::Timeout(_) | Error::Io(_))
}

/// Whether an answer to a resend leaves its fate open: the gateway could
/// not tell yet (UNAVAILABLE: the first attempt is queued but not written,
/// or the data behind the gateway is out of reach) or took nothing for
/// now (BUSY, RATE_LIMITED). The first attempt may still be stored, so the
/// send stays in the outbox for the next resend; only a resend's answer
/// settles it.
pub fn not_settled(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::Unavailable | ErrorCode::Busy | ErrorCode::RateLimited)
    )
}

#[derive(Debug)]
pub struct Outbox {
    pending: VecDeque<Unacked>,
    prefix: String,
    next: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        // Random per client (std's hasher keys are), with the time: two
        // clients of one user never make the same id.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let random = RandomState::new().hash_one(nanos);
        Self {
            pending: VecDeque::new(),
            prefix: format!("{random:016x}"),
            next: 0,
        }
    }
}

impl Outbox {
    /// A fresh client message id.
    pub fn new_id(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.prefix, self.next)
    }

    pub fn add(&mut self, send: Unacked) {
        self.pending.push_back(send);
    }

    /// Forgets the send with this client id (acked, or refused for good).
    pub fn done(&mut self, client_msg_id: &str) {
        self.pending.retain(|u| u.client_msg_id() != client_msg_id);
    }

    /// The sends awaiting an ack, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Unacked> {
        self.pending.iter()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_per_client_and_between_clients() {
        let (mut a, mut b) = (Outbox::default(), Outbox::default());
        let ids: std::collections::HashSet<String> =
            (0..1000).flat_map(|_| [a.new_id(), b.new_id()]).collect();
        assert_eq!(ids.len(), 2000);
        assert!(ids.iter().all(|id| id.len() <= 64), "within the protocol's bound");
    }

    #[test]
    fn a_resend_answered_not_yet_stays_and_a_refusal_settles() {
        let server = |code| Error::Server {
            code,
            message: String::new(),
        };
        assert!(not_settled(&server(ErrorCode::Unavailable)));
        assert!(not_settled(&Error::Busy {
            message: String::new(),
            retry_after: std::time::Duration::from_millis(5),
        }));
        assert!(!not_settled(&server(ErrorCode::Forbidden)));
        assert!(!not_settled(&Error::Closed), "a lost answer is answer_lost's");
    }

    #[test]
    fn a_send_stays_until_done_and_comes_back_as_a_resend() {
        let mut o = Outbox::default();
        let req = pb::SendRequest {
            to_user: 2,
            body: "hi".into(),
            client_msg_id: o.new_id(),
            ..Default::default()
        };
        o.add(Unacked::Direct(req.clone()));
        let Some(Body::Send(again)) = o.pending().next().map(Unacked::resend) else {
            panic!("not a send");
        };
        assert!(again.resend);
        assert_eq!(again.client_msg_id, req.client_msg_id);
        o.done(&req.client_msg_id);
        assert!(o.is_empty());
    }

    #[test]
    fn only_a_lost_answer_keeps_a_send() {
        assert!(answer_lost(&Error::Closed));
        assert!(answer_lost(&Error::Timeout(std::time::Duration::from_secs(1))));
        assert!(!answer_lost(&Error::Server {
            code: pb::ErrorCode::Forbidden,
            message: "not friends".into()
        }));
    }
}
