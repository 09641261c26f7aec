//! Moving a shard replica from one node to another, in steps that are each
//! safe to repeat (an interrupted move is finished by asking again):
//!
//! 1. the receiving node starts an empty replica (`CreateReplica`);
//! 2. the shard leader adds it as a learner and waits until it caught up by
//!    snapshot and log, then swaps the voters (joint consensus) — the data
//!    sync is Raft replication itself (`ChangeReplicas`);
//! 3. the meta leader records the new replica set, bumping the shard's
//!    `conf_ver`, so clients with the old epoch get `EpochNotMatch` with the
//!    new descriptors;
//! 4. the node that gave the replica away stops it and deletes its data
//!    (`DropReplica`), refusing while the map still lists it there. It keeps
//!    a tombstone with the shard's new record for `tombstone_ms`
//!    (`tombstone.rs`), so it redirects callers with an old map to the new
//!    replicas, even after it left the cluster.
//!
//! The replica count never drops below the replication factor: the new
//! replica is a caught-up voter before the old one leaves.
//!
//! Parts: `replica` runs a move on the meta leader; `steps` serves the
//! steps asked of the shard leader and of the giving node; `calls` are the
//! calls the meta leader makes to other routers for them; `balance` plans
//! and runs rebalances and leader balancing; `drain` empties and removes a
//! node.

mod balance;
mod calls;
mod drain;
mod replica;
mod steps;

pub use balance::balance_leaders;
pub use balance::rebalance;
pub use drain::drain;
pub use drain::remove;
pub use replica::move_replica;
pub use steps::change_replicas;
pub use steps::drop_replica;
