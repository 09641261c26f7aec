//! The errors of this crate.

/// A cluster map that cannot be indexed: a bad slot count, a reserved or
/// repeated shard id, ranges outside the slot space or overlapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySpaceError {
    #[error("invalid cluster map: {0}")]
    InvalidMap(String),
}
