//! What a client remembers to sync: the last sequence it has of every
//! conversation, the message ids it has seen (bounded), the last message it
//! saw in each conversation (reads ask the server to include it), and the
//! server's commit-order cursor of its last sync.

use std::collections::{HashMap, HashSet, VecDeque};

/// Seen message ids kept for duplicate dropping.
const SEEN_MAX: usize = 100_000;

#[derive(Debug, Default, Clone)]
pub struct SyncState {
    pub last_seq: HashMap<String, u64>,
    /// The message last seen per conversation (acknowledged send or push).
    pub last_seen: HashMap<String, u64>,
    /// The `cursor` of the last sync (0: none yet).
    pub cursor: u64,
    seen: HashSet<u64>,
    order: VecDeque<u64>,
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
}
