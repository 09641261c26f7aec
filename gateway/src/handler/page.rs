//! Pages of list answers: every list (friends, friend requests, groups,
//! members, join requests, changed conversations) is sorted by a unique
//! string key and cut after the request's cursor, at most the page size
//! (`user_limits.page_size` by default, never over `max_page_size`).

use confab_proto::client::{self as pb};

use crate::metrics;
use crate::state::Shared;

/// Where a page starts and how long it is.
pub struct Page {
    cursor: String,
    limit: usize,
}

impl Page {
    /// The page a request asks for; none (an older client) = the first.
    pub fn of(shared: &Shared, r: Option<&pb::PageRequest>) -> Self {
        let l = &shared.config.user_limits;
        let (cursor, asked) = r.map_or((String::new(), 0), |p| (p.cursor.clone(), p.limit));
        let limit = match asked {
            0 => l.page_size,
            n => n.min(l.max_page_size),
        };
        Self {
            cursor,
            limit: limit as usize,
        }
    }

    /// The items of this page, in key order, and where the next starts.
    /// Keys must be unique within the list.
    pub fn cut<T>(
        &self,
        list: &'static str,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, pb::PageInfo) {
        let mut keyed: Vec<(String, T)> = items
            .into_iter()
            .map(|t| (key(&t), t))
            .filter(|(k, _)| self.cursor.is_empty() || *k > self.cursor)
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let more = keyed.len() > self.limit;
        keyed.truncate(self.limit);
        let next_cursor = keyed
            .last()
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| self.cursor.clone());
        metrics::LIST_PAGES
            .with_label_values(&[list, if more { "more" } else { "last" }])
            .inc();
        (
            keyed.into_iter().map(|(_, t)| t).collect(),
            pb::PageInfo { next_cursor, more },
        )
    }
}

/// A key of a numeric id that sorts as the number does.
pub fn id_key(id: u64) -> String {
    format!("{id:020}")
}
