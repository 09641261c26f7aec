//! The session operations: login, logout and the batch lookup.

use std::collections::{BTreeSet, HashMap};

use std::sync::Arc;

use confab_proto::router::batch_item::Op;
use confab_proto::router::batch_result::Result as Answer;
use confab_proto::router::{
    BatchItem, BatchResult, LoginRequest, LogoutRequest, LookupRequest, LookupResponse, MultiDevicePolicy,
    Session, ShardEpoch, ShardLookup,
};
use futures::future::join_all;
use tonic::{Code, Status};

use crate::client::RouterClient;
use crate::coalesce::{Coalescer, item_status};
use crate::driver::{Target, Tries, Unroutable, fatal_error};
use crate::error::Result;
use crate::plan::{group_by_node, split_by_shard};
use crate::retry::{Action, Failure, classify_route_error, classify_status};
use crate::routing::Routing;

/// The result of a login.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginOutcome {
    /// Sessions the login replaced under the multi-device policy.
    pub kicked: Vec<Session>,
    /// The Raft log index the login was applied at.
    pub log_index: u64,
}

/// The shard of `uid` and the node to ask for it, from the cache.
fn route_uid(
    routing: &Routing,
    uid: u64,
    rotation: usize,
) -> Result<(Target, Option<ShardEpoch>), Unroutable> {
    let slot = routing.shards.slot_of(uid);
    let desc = routing
        .shards
        .shard_of_slot(slot)
        .ok_or_else(|| Unroutable::NeedMap(format!("no shard owns slot {slot} (uid {uid})")))?;
    let shard = desc.shard_id;
    let (node, addr) = routing
        .target(shard, rotation)
        .ok_or_else(|| Unroutable::NeedMap(format!("no node address for shard {shard}")))?;
    let target = Target {
        group: shard,
        node,
        addr,
    };
    Ok((target, desc.epoch))
}

/// Unwraps an item's answer: the expected kind, or the status its failure
/// stands for.
fn batched<T>(
    reply: Result<BatchResult, Status>,
    pick: impl FnOnce(Answer) -> std::result::Result<T, Answer>,
) -> Result<tonic::Response<T>, Status> {
    match reply?.result {
        Some(Answer::Error(e)) => Err(item_status(e)),
        Some(answer) => pick(answer)
            .map(tonic::Response::new)
            .map_err(|other| Status::internal(format!("unexpected batch answer {other:?}"))),
        None => Err(Status::internal("a batch result without an answer")),
    }
}

/// One node's share of a lookup round.
struct NodeBatch {
    node: u64,
    addr: String,
    parts: Vec<ShardLookup>,
}

impl RouterClient {
    /// The coalescer of the node `target` names.
    fn via(&self, target: &Target) -> Result<Arc<Coalescer>, Unroutable> {
        self.inner.pool.coalescer(&target.addr).map_err(Unroutable::Fail)
    }

    /// Logs `session` in for `uid` on the shard leader, kicking other sessions
    /// as `policy` says.
    pub async fn login(&self, uid: u64, session: Session, policy: MultiDevicePolicy) -> Result<LoginOutcome> {
        let response = self
            .drive(
                "login",
                |routing, rotation| {
                    let (target, epoch) = route_uid(routing, uid, rotation)?;
                    let request = LoginRequest {
                        shard_id: target.group,
                        epoch,
                        uid,
                        session: Some(session.clone()),
                        policy: policy as i32,
                    };
                    Ok((target.clone(), (self.via(&target)?, Op::Login(request))))
                },
                |_, (via, op)| async move {
                    batched(via.call(BatchItem { op: Some(op) }).await, |r| match r {
                        Answer::Login(r) => Ok(r),
                        other => Err(other),
                    })
                },
            )
            .await?;
        Ok(LoginOutcome {
            kicked: response.kicked,
            log_index: response.log_index,
        })
    }

    /// Logs session `session_id` of `uid` out; false when it was not there.
    pub async fn logout(&self, uid: u64, session_id: u64) -> Result<bool> {
        let response = self
            .drive(
                "logout",
                |routing, rotation| {
                    let (target, epoch) = route_uid(routing, uid, rotation)?;
                    let request = LogoutRequest {
                        shard_id: target.group,
                        epoch,
                        uid,
                        session_id,
                    };
                    Ok((target.clone(), (self.via(&target)?, Op::Logout(request))))
                },
                |_, (via, op)| async move {
                    batched(via.call(BatchItem { op: Some(op) }).await, |r| match r {
                        Answer::Logout(r) => Ok(r),
                        other => Err(other),
                    })
                },
            )
            .await?;
        Ok(response.removed)
    }

    /// The sessions of `uids`. Only users with at least one session appear in
    /// the result. The uids are split per shard, the parts grouped by leader
    /// node, one RPC per node in parallel; only failed parts are retried.
    pub async fn lookup(&self, uids: &[u64]) -> Result<HashMap<u64, Vec<Session>>> {
        let mut found = HashMap::new();
        if uids.is_empty() {
            return Ok(found);
        }
        let mut tries = Tries::new("lookup", self);
        self.ensure_map(&mut tries).await?;
        let mut pending = uids.to_vec();
        loop {
            if tries.expired() {
                return Err(tries.timeout());
            }
            let (batches, mut retry) = self.plan_lookup(&mut tries, &pending);
            let mut worst = (!retry.is_empty()).then_some(Action::RefreshMap);
            if worst.is_some() {
                tries.last = format!("{} uids have no routable shard", retry.len());
            }
            let timeout = self.attempt_timeout(tries.deadline);
            // One Lookup RPC per node carries all its parts (measured: faster
            // than coalescing the parts into batch items, which hold a whole
            // batch's answer until its slowest part is done).
            let calls = batches.into_iter().map(|batch| async move {
                let request = LookupRequest {
                    parts: batch.parts.clone(),
                };
                let result = match self.stub(&batch.addr) {
                    Ok(stub) => {
                        tokio::time::timeout(timeout, stub.data().lookup(confab_net::trace::request(request)))
                            .await
                            .map(|r| r.map(tonic::Response::into_inner))
                    }
                    Err(error) => Ok(Err(tonic::Status::unavailable(error.to_string()))),
                };
                (batch, result)
            });
            for (batch, result) in join_all(calls).await {
                let outcome = match result {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(status)) => Err(classify_status(&status)),
                    Err(_) => Err(Failure::Transient {
                        code: Code::DeadlineExceeded,
                        message: format!("no answer within {timeout:?}"),
                    }),
                };
                let action = self.absorb(&mut tries, batch, outcome, &mut found, &mut retry)?;
                worst = worst.max(action);
            }
            match worst {
                None => return Ok(found),
                Some(action) => {
                    pending = retry;
                    self.settle(&mut tries, action).await?;
                }
            }
        }
    }

    /// Splits `pending` into one batch per node; uids that cannot be routed
    /// from the cache are returned apart.
    fn plan_lookup(&self, tries: &mut Tries, pending: &[u64]) -> (Vec<NodeBatch>, Vec<u64>) {
        let routing = self.read();
        tries.seen = routing.generation;
        let split = split_by_shard(pending, &routing.shards);
        let (grouped, orphans) = group_by_node(split.parts, |shard| routing.target(shard, tries.rotation));
        let mut unroutable = split.unassigned;
        unroutable.extend(orphans.into_iter().flat_map(|(_, uids)| uids));
        let batches = grouped
            .into_iter()
            .map(|((node, addr), parts)| NodeBatch {
                node,
                addr,
                parts: parts
                    .into_iter()
                    .map(|(shard_id, uids)| ShardLookup {
                        shard_id,
                        epoch: routing.shards.descriptor(shard_id).and_then(|d| d.epoch),
                        uids,
                    })
                    .collect(),
            })
            .collect();
        (batches, unroutable)
    }

    /// Takes one node's answer into `found`; failed parts go back to `retry`.
    /// Returns the action the failures call for (`None`: all parts stand).
    fn absorb(
        &self,
        tries: &mut Tries,
        batch: NodeBatch,
        outcome: Result<LookupResponse, Failure>,
        found: &mut HashMap<u64, Vec<Session>>,
        retry: &mut Vec<u64>,
    ) -> Result<Option<Action>> {
        let mut worst = None;
        let mut fail = |tries: &mut Tries, part: ShardLookup, failure: Failure| {
            let target = Target {
                group: part.shard_id,
                node: batch.node,
                addr: batch.addr.clone(),
            };
            let action = self.note_failure(tries, &target, &failure);
            retry.extend(part.uids);
            worst = worst.max(Some(action));
            if action == Action::Fail {
                return Err(fatal_error(tries.op, &batch.addr, failure));
            }
            Ok(())
        };
        match outcome {
            Err(failure) => {
                for part in batch.parts.iter().cloned() {
                    fail(tries, part, failure.clone())?;
                }
            }
            Ok(response) => {
                let mut sent: HashMap<u32, ShardLookup> =
                    batch.parts.iter().map(|p| (p.shard_id, p.clone())).collect();
                for part in response.parts {
                    let Some(asked) = sent.remove(&part.shard_id) else {
                        continue;
                    };
                    match part.error {
                        None => {
                            self.note_leader(part.shard_id, batch.node);
                            let asked: BTreeSet<u64> = asked.uids.iter().copied().collect();
                            for user in part.users.into_iter().filter(|u| asked.contains(&u.uid)) {
                                found.insert(user.uid, user.sessions);
                            }
                        }
                        Some(error) => {
                            let failure = classify_route_error(error).unwrap_or(Failure::Transient {
                                code: Code::Unknown,
                                message: "route error without a kind".into(),
                            });
                            fail(tries, asked, failure)?;
                        }
                    }
                }
                for (_, missing) in sent {
                    let failure = Failure::Transient {
                        code: Code::Internal,
                        message: format!("no answer for shard {}", missing.shard_id),
                    };
                    fail(tries, missing, failure)?;
                }
            }
        }
        Ok(worst)
    }
}
