//! What a client remembers to sync: the last sequence it has of every
//! conversation, the message ids it has seen (bounded), the last message it
//! saw in each conversation (reads ask the server to include it), the
//! server's commit-order cursor of its last sync, and which message id each
//! recent send (sender and client message id) was shown under; and the
//! pushes held back until their sender's previous message is seen.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use confab_proto::client as pb;

/// Seen message ids kept for duplicate dropping.
const SEEN_MAX: usize = 100_000;
/// Sends whose shown copy is remembered. Two copies of one send exist only
/// while a resend races its first attempt (seconds), so the recent ones do.
const COPIES_MAX: usize = 20_000;

#[derive(Debug, Default, Clone)]
pub struct SyncState {
    pub last_seq: HashMap<String, u64>,
    /// The message last seen per conversation (acknowledged send or push).
    pub last_seen: HashMap<String, u64>,
    /// The `cursor` of the last sync (0: none yet).
    pub cursor: u64,
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    /// Sender -> client message id -> the id its copy was shown under.
    copies: HashMap<u64, HashMap<String, u64>>,
    copies_order: VecDeque<(u64, String)>,
}

impl SyncState {
    /// Marks `id` seen; false when it was already (a duplicate).
    pub fn first_sight(&mut self, id: u64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_MAX
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    pub fn seen(&self, id: u64) -> bool {
        self.seen.contains(&id)
    }

    /// The id another copy of `sender`'s send `client_msg_id` was shown
    /// under, if one was and it is not `id`. (A send without a client
    /// message id is never resent, so it has one copy.)
    pub fn other_copy(&self, sender: u64, client_msg_id: &str, id: u64) -> Option<u64> {
        if client_msg_id.is_empty() {
            return None;
        }
        self.copies
            .get(&sender)
            .and_then(|c| c.get(client_msg_id))
            .copied()
            .filter(|&shown| shown != id)
    }

    /// Remembers `id` as the copy of `sender`'s send `client_msg_id` shown
    /// here (replacing another copy's id).
    pub fn shown_as(&mut self, sender: u64, client_msg_id: &str, id: u64) {
        if client_msg_id.is_empty() {
            return;
        }
        let of_sender = self.copies.entry(sender).or_default();
        if of_sender.insert(client_msg_id.to_owned(), id).is_some() {
            return;
        }
        self.copies_order.push_back((sender, client_msg_id.to_owned()));
        if self.copies_order.len() > COPIES_MAX
            && let Some((sender, key)) = self.copies_order.pop_front()
            && let Some(of_sender) = self.copies.get_mut(&sender)
        {
            of_sender.remove(&key);
            if of_sender.is_empty() {
                self.copies.remove(&sender);
            }
        }
    }

    /// Remembers `id` as the message last seen in `conversation`.
    pub fn saw(&mut self, conversation: &str, id: u64) {
        match self.last_seen.get_mut(conversation) {
            Some(last) => *last = id,
            None => {
                self.last_seen.insert(conversation.to_owned(), id);
            }
        }
    }

    /// The message last seen in `conversation`, 0 for none.
    pub fn last_seen(&self, conversation: &str) -> u64 {
        self.last_seen.get(conversation).copied().unwrap_or(0)
    }

    pub fn last(&self, conversation: &str) -> u64 {
        self.last_seq.get(conversation).copied().unwrap_or(0)
    }

    pub fn advance(&mut self, conversation: &str, seq: u64) {
        let e = self.last_seq.entry(conversation.to_owned()).or_insert(0);
        if seq > *e {
            *e = seq;
        }
    }
}

/// A conversation's pushes held back: the first names a previous message
/// this device has not seen and a fetch did not bring (not written yet);
/// those after it wait behind it.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) messages: VecDeque<pb::Message>,
    pub(crate) since: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_seen_once_and_sequences_only_grow() {
        let mut s = SyncState::default();
        assert!(s.first_sight(5));
        assert!(!s.first_sight(5));
        s.advance("d:1:2", 3);
        s.advance("d:1:2", 2);
        assert_eq!(s.last("d:1:2"), 3);
        assert_eq!(s.last("d:1:3"), 0);
    }

    #[test]
    fn a_second_copy_of_a_send_names_the_first() {
        let mut s = SyncState::default();
        assert_eq!(s.other_copy(7, "k", 100), None);
        s.shown_as(7, "k", 100);
        assert_eq!(s.other_copy(7, "k", 100), None, "the same copy");
        assert_eq!(s.other_copy(7, "k", 200), Some(100));
        assert_eq!(s.other_copy(8, "k", 200), None, "another sender's key");
        s.shown_as(7, "k", 200);
        assert_eq!(s.other_copy(7, "k", 100), Some(200), "replaced");
        // Without a client id: always a message of its own.
        s.shown_as(7, "", 300);
        assert_eq!(s.other_copy(7, "", 400), None);
    }

    #[test]
    fn copies_are_bounded_oldest_first() {
        let mut s = SyncState::default();
        for i in 0..COPIES_MAX as u64 + 10 {
            s.shown_as(i % 3, &format!("k{i}"), i + 1);
        }
        assert_eq!(s.copies_order.len(), COPIES_MAX);
        assert_eq!(s.other_copy(0, "k0", 999_999), None, "forgotten");
        let last = COPIES_MAX as u64 + 9;
        assert_eq!(
            s.other_copy(last % 3, &format!("k{last}"), 999_999),
            Some(last + 1)
        );
    }
}
