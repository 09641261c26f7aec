//! A connection's typing gate: at most one typing notice per conversation
//! per interval is forwarded. Typing is never stored and costs a router
//! lookup and pushes, so a client that sends one per keystroke must not
//! turn each into traffic for every member of a group.
//!
//! Per connection, in memory: a table of when each conversation's last
//! notice went out, bounded; entries whose interval passed are swept when
//! it is full, and a connection typing in more conversations than that
//! within one interval is refused like a too-early notice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Conversations one connection may type in within one interval.
const MAX_ENTRIES: usize = 64;

pub struct TypingGate {
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl TypingGate {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Lets a notice for `conversation` through, or says how long until
    /// the next one may go.
    pub fn pass(&self, conversation: &str) -> Result<(), Duration> {
        self.pass_at(conversation, Instant::now())
    }

    fn pass_at(&self, conversation: &str, now: Instant) -> Result<(), Duration> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = last.get(conversation) {
            let since = now.saturating_duration_since(*at);
            if since < self.interval {
                return Err(self.interval - since);
            }
        }
        if last.len() >= MAX_ENTRIES && !last.contains_key(conversation) {
            let interval = self.interval;
            last.retain(|_, at| now.saturating_duration_since(*at) < interval);
            if last.len() >= MAX_ENTRIES {
                let oldest = last.values().min().copied().unwrap_or(now);
                return Err(interval.saturating_sub(now.saturating_duration_since(oldest)));
            }
        }
        last.insert(conversation.to_owned(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_conversation_per_interval() {
        let gate = TypingGate::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(gate.pass_at("d:1:2", t0).is_ok());
        let wait = gate.pass_at("d:1:2", t0 + Duration::from_millis(500));
        assert_eq!(wait, Err(Duration::from_millis(1500)));
        assert!(gate.pass_at("g:7", t0).is_ok(), "another conversation");
        assert!(gate.pass_at("d:1:2", t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let gate = TypingGate::new(Duration::from_secs(2));
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES {
            assert!(gate.pass_at(&format!("g:{i}"), t0).is_ok());
        }
        assert!(gate.pass_at("g:999", t0).is_err(), "full within the interval");
        assert!(
            gate.pass_at("g:999", t0 + Duration::from_secs(3)).is_ok(),
            "swept once the interval passed"
        );
        assert!(gate.last.lock().map(|l| l.len()).unwrap_or(0) <= MAX_ENTRIES);
    }
}
