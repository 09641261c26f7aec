//! Known users (ids and names), so that a send does not ask persist whether
//! the recipient exists every time. Reading a user through it (persist on a
//! miss) is [`crate::service::users`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The users seen lately. Users are never deleted; the cache is bounded by
/// clearing it when full.
#[derive(Default)]
pub struct UserCache {
    inner: Mutex<(HashSet<u64>, HashMap<String, u64>)>,
}

const USER_CACHE_MAX: usize = 200_000;

impl UserCache {
    pub fn has_id(&self, id: u64) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(&id)
    }

    pub fn id_of(&self, name: &str) -> Option<u64> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(name)
            .copied()
    }

    pub fn remember(&self, id: u64, name: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.len() >= USER_CACHE_MAX {
            g.0.clear();
            g.1.clear();
        }
        g.0.insert(id);
        g.1.insert(name.to_owned(), id);
    }
}
