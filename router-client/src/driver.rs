//! The retry loop shared by every routed operation: route an attempt from the
//! cache, send it, classify a failure, update the cache, then retry at once,
//! back off or refresh the map, all within the operation's deadline.

use std::future::Future;

use confab_net::Delays;
use tokio::time::Instant;
use tonic::{Code, Status};
use tracing::debug;

use crate::client::RouterClient;
use crate::error::{Error, Result};
use crate::pool::Stub;
use crate::retry::{Action, Failure, action_for, backoff, classify_status};
use crate::routing::Routing;

/// Where one attempt goes: a Raft group and the node asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) group: u32,
    pub(crate) node: u64,
    pub(crate) addr: String,
}

/// Why an attempt could not be routed from the cache.
#[derive(Debug)]
pub(crate) enum Unroutable {
    /// The cache lacks the shard or an address: refresh the map and retry.
    NeedMap(String),
    /// Routing can never succeed (e.g. an unknown group).
    Fail(Error),
}

/// The bookkeeping of one operation's attempts.
#[derive(Debug)]
pub(crate) struct Tries {
    pub(crate) op: &'static str,
    started: Instant,
    pub(crate) deadline: Instant,
    /// Which replica to try next when no leader is known.
    pub(crate) rotation: usize,
    /// The cache generation the last attempt was routed with.
    pub(crate) seen: u64,
    /// The delays of this operation's backoffs, in order.
    delays: Delays,
    streak: u32,
    refreshes: u32,
    pub(crate) last: String,
}

impl Tries {
    pub(crate) fn new(op: &'static str, client: &RouterClient) -> Self {
        let started = Instant::now();
        Tries {
            op,
            started,
            deadline: started + client.config().deadline,
            rotation: 0,
            seen: 0,
            delays: backoff(client.config().backoff_base, client.config().backoff_max).delays(),
            streak: 0,
            refreshes: 0,
            last: "none".into(),
        }
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    pub(crate) fn timeout(&self) -> Error {
        Error::Timeout {
            op: self.op,
            elapsed: self.started.elapsed(),
            last: self.last.clone(),
        }
    }
}

/// The error an operation returns for a failure the policy gives up on.
pub(crate) fn fatal_error(op: &'static str, addr: &str, failure: Failure) -> Error {
    match failure {
        Failure::InvalidArgument(message) => Error::InvalidArgument(message),
        Failure::Fatal { code, message } => Error::Rpc {
            op,
            addr: addr.to_owned(),
            status: Box::new(Status::new(code, message)),
        },
        other => Error::Rpc {
            op,
            addr: addr.to_owned(),
            status: Box::new(Status::unknown(format!("{other:?}"))),
        },
    }
}

impl RouterClient {
    /// Runs one single-group operation to completion or to its deadline.
    /// `route` builds the target and request from the cache for a try;
    /// `send` performs the RPC.
    pub(crate) async fn drive<Req, T, Fut>(
        &self,
        op: &'static str,
        route: impl Fn(&Routing, usize) -> Result<(Target, Req), Unroutable>,
        send: impl Fn(Stub, Req) -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut tries = Tries::new(op, self);
        self.ensure_map(&mut tries).await?;
        loop {
            if tries.expired() {
                return Err(tries.timeout());
            }
            let routed = {
                let routing = self.read();
                tries.seen = routing.generation;
                route(&routing, tries.rotation)
            };
            let (target, request) = match routed {
                Ok(routed) => routed,
                Err(Unroutable::Fail(error)) => return Err(error),
                Err(Unroutable::NeedMap(reason)) => {
                    tries.last = reason;
                    self.settle(&mut tries, Action::RefreshMap).await?;
                    continue;
                }
            };
            let stub = self.stub(&target.addr)?;
            let timeout = self.attempt_timeout(tries.deadline);
            let failure = match tokio::time::timeout(timeout, send(stub, request)).await {
                Ok(Ok(response)) => {
                    self.note_leader(target.group, target.node);
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) => classify_status(&status),
                Err(_) => Failure::Transient {
                    code: Code::DeadlineExceeded,
                    message: format!("no answer within {timeout:?}"),
                },
            };
            match self.note_failure(&mut tries, &target, &failure) {
                Action::Fail => return Err(fatal_error(op, &target.addr, failure)),
                action => self.settle(&mut tries, action).await?,
            }
        }
    }

    /// Records that `node` served a leader-only request of `group`; takes the
    /// write lock only when the cache disagrees.
    pub(crate) fn note_leader(&self, group: u32, node: u64) {
        if self.read().leader_differs(group, node) {
            self.write().set_leader(group, node);
        }
    }

    /// Loads the map if none is cached, retrying until the deadline.
    pub(crate) async fn ensure_map(&self, tries: &mut Tries) -> Result<()> {
        while !self.read().loaded() {
            match self.refresh_before(tries.deadline, None).await {
                Ok(()) => {}
                Err(Error::NoReachableNode { tried }) => {
                    if tries.expired() {
                        return Err(Error::NoReachableNode { tried });
                    }
                    tries.last = format!("no reachable node (tried {tried:?})");
                    self.sleep_backoff(tries).await;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Records `failure` of an attempt at `target`, applies the cache update
    /// it carries and returns what the policy says to do.
    pub(crate) fn note_failure(&self, tries: &mut Tries, target: &Target, failure: &Failure) -> Action {
        debug!(op = tries.op, group = target.group, addr = %target.addr, ?failure, "router call failed");
        tries.last = format!("{failure:?} from {}", target.addr);
        self.write().apply(target.group, target.node, failure);
        action_for(failure, tries.streak, self.config().max_immediate_retries)
    }

    /// Carries out a non-failing action before the next try.
    pub(crate) async fn settle(&self, tries: &mut Tries, action: Action) -> Result<()> {
        match action {
            Action::RetryNow => tries.streak += 1,
            Action::Backoff => {
                tries.streak = 0;
                tries.rotation += 1;
                self.sleep_backoff(tries).await;
            }
            Action::RefreshMap => {
                tries.streak = 0;
                tries.refreshes += 1;
                if tries.refreshes > 1 {
                    self.sleep_backoff(tries).await;
                }
                if let Err(error) = self.refresh_before(tries.deadline, Some(tries.seen)).await {
                    match error {
                        Error::NoReachableNode { .. } => {
                            tries.last = error.to_string();
                            tries.rotation += 1;
                            self.sleep_backoff(tries).await;
                        }
                        other => return Err(other),
                    }
                }
            }
            Action::Fail => return Err(tries.timeout()),
        }
        Ok(())
    }

    /// Sleeps the next backoff delay, never past the deadline.
    async fn sleep_backoff(&self, tries: &mut Tries) {
        let delay = tries.delays.next().unwrap_or(self.config().backoff_max);
        let until = (Instant::now() + delay).min(tries.deadline);
        tokio::time::sleep_until(until).await;
    }
}
