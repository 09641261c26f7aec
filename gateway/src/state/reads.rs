//! Read your writes, bounded: a Fetch or History may name a message
//! (`min_message_id`) that persist then waits for, up to its read wait,
//! polling the database meanwhile. Only the id of a message the connection
//! itself sent (acknowledged) or was pushed recently is worth that wait:
//! such a message is queued, so the wait ends soon. Any other id (a guess,
//! a far future one) would let a client make every read a slow one and
//! keep persist polling; it is read at once. And a connection has only a
//! few waits at a time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Ids remembered per connection: a read names a message it has just sent
/// or received, not one from hundreds of messages ago.
pub const REMEMBERED: usize = 256;

/// What a read may wait for.
#[derive(Debug)]
pub enum Wait {
    /// No id named: read at once.
    None,
    /// Not an id this connection sent or was pushed: read at once.
    NotOwn,
    /// Wait for the id, holding one of the connection's wait slots.
    Own(u64, OwnedSemaphorePermit),
    /// Every slot is taken.
    Busy,
}

/// One connection's recent message ids and its wait slots. The slots exist
/// from the first wait on, so an idle connection holds none.
#[derive(Debug)]
pub struct ReadWaits {
    known: Mutex<VecDeque<u64>>,
    slots: std::sync::OnceLock<Arc<Semaphore>>,
    max: usize,
}

impl ReadWaits {
    pub fn new(max_waits: u32) -> Self {
        Self {
            known: Mutex::new(VecDeque::new()),
            slots: std::sync::OnceLock::new(),
            max: max_waits.max(1) as usize,
        }
    }

    /// The connection was told of message `id` (its send's ack, or a push).
    pub fn known(&self, id: u64) {
        let mut sent = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if sent.contains(&id) {
            return;
        }
        if sent.len() == REMEMBERED {
            sent.pop_front();
        }
        sent.push_back(id);
    }

    /// Whether the connection was told of message `id` lately.
    pub fn knows(&self, id: u64) -> bool {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }

    /// What a read naming `id` may wait for.
    pub fn wait_for(&self, id: u64) -> Wait {
        if id == 0 {
            return Wait::None;
        }
        let own = self.known.lock().unwrap_or_else(|p| p.into_inner()).contains(&id);
        if !own {
            return Wait::NotOwn;
        }
        let slots = self.slots.get_or_init(|| Arc::new(Semaphore::new(self.max)));
        match slots.clone().try_acquire_owned() {
            Ok(permit) => Wait::Own(id, permit),
            Err(_) => Wait::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_recent_ids_wait_and_no_more_than_the_slots() {
        let r = ReadWaits::new(2);
        assert!(matches!(r.wait_for(0), Wait::None));
        assert!(matches!(r.wait_for(7), Wait::NotOwn));
        r.known(7);
        r.known(8);
        let a = r.wait_for(7);
        let b = r.wait_for(8);
        assert!(matches!(a, Wait::Own(7, _)));
        assert!(matches!(b, Wait::Own(8, _)));
        assert!(matches!(r.wait_for(7), Wait::Busy), "a third wait at once");
        drop(a);
        assert!(matches!(r.wait_for(7), Wait::Own(7, _)), "a slot came back");
    }

    #[test]
    fn old_ids_are_forgotten() {
        let r = ReadWaits::new(1);
        for id in 1..=(REMEMBERED as u64 + 1) {
            r.known(id);
        }
        assert!(matches!(r.wait_for(1), Wait::NotOwn));
        assert!(matches!(r.wait_for(2), Wait::Own(2, _)));
    }
}
