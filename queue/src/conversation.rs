//! Conversation ids: `d:{lo}:{hi}` for a direct conversation between users
//! `lo <= hi`, `g:{group_id}` for a group. See `persist.proto`.

use std::fmt;
use std::str::FromStr;

use crate::error::QueueError;

/// The longest conversation id: "d:" + two 19-digit numbers + ":".
pub const MAX_ID_LEN: usize = 2 + 19 + 1 + 19;

/// A parsed conversation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationId {
    /// Between users `lo <= hi`.
    Direct {
        lo: u64,
        hi: u64,
    },
    Group(u64),
}

impl ConversationId {
    /// The direct conversation of two users, in either order.
    pub fn direct(a: u64, b: u64) -> Self {
        ConversationId::Direct {
            lo: a.min(b),
            hi: a.max(b),
        }
    }

    /// The conversation of group `id`.
    pub fn group(id: u64) -> Self {
        ConversationId::Group(id)
    }

    /// 1 for direct, 2 for group (the `kind` column).
    pub fn kind(&self) -> i16 {
        match self {
            ConversationId::Direct { .. } => 1,
            ConversationId::Group(_) => 2,
        }
    }

    /// The partition of the queue this conversation's messages travel in.
    /// A stable hash (xxh64 of the id string), never Rust's random one.
    pub fn partition(id: &str, partitions: u32) -> u32 {
        (xxhash_rust::xxh64::xxh64(id.as_bytes(), 0) % u64::from(partitions.max(1))) as u32
    }
}

fn valid_id(v: u64) -> bool {
    v != 0 && v <= i64::MAX as u64
}

fn parse_num(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| valid_id(*v))
}

impl FromStr for ConversationId {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, QueueError> {
        let bad = || QueueError::BadConversationId(s.to_owned());
        if s.len() > MAX_ID_LEN {
            return Err(bad());
        }
        if let Some(rest) = s.strip_prefix("d:") {
            let (lo, hi) = rest.split_once(':').ok_or_else(bad)?;
            let (lo, hi) = (parse_num(lo).ok_or_else(bad)?, parse_num(hi).ok_or_else(bad)?);
            if lo > hi {
                return Err(bad());
            }
            Ok(ConversationId::Direct { lo, hi })
        } else if let Some(g) = s.strip_prefix("g:") {
            Ok(ConversationId::Group(parse_num(g).ok_or_else(bad)?))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConversationId::Direct { lo, hi } => write!(f, "d:{lo}:{hi}"),
            ConversationId::Group(g) => write!(f, "g:{g}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let d = ConversationId::direct(9, 3);
        assert_eq!(d.to_string(), "d:3:9");
        assert_eq!("d:3:9".parse::<ConversationId>().ok(), Some(d));
        assert_eq!(
            "g:42".parse::<ConversationId>().ok(),
            Some(ConversationId::Group(42))
        );
        for bad in ["", "d:9:3", "d:03:9", "d:0:1", "g:", "g:x", "x:1", "d:1", "g:-1"] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad}");
        }
        assert!(format!("g:{}", u64::MAX).parse::<ConversationId>().is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings_parse_or_fail_and_what_parses_prints_back(s in "\\PC{0,48}|[dg]:[0-9:]{0,44}") {
            if let Ok(id) = s.parse::<ConversationId>() {
                proptest::prop_assert_eq!(id.to_string(), s);
            }
        }

        #[test]
        fn valid_ids_round_trip(a in 1..=i64::MAX as u64, b in 1..=i64::MAX as u64) {
            for id in [ConversationId::direct(a, b), ConversationId::group(a)] {
                proptest::prop_assert_eq!(id.to_string().parse::<ConversationId>().ok(), Some(id));
                proptest::prop_assert!(id.to_string().len() <= MAX_ID_LEN);
            }
        }
    }

    #[test]
    fn partition_is_stable() {
        assert_eq!(
            ConversationId::partition("d:1:2", 16),
            ConversationId::partition("d:1:2", 16)
        );
        assert!(ConversationId::partition("g:7", 4) < 4);
    }
}
