//! Writes of a shard, coalesced: concurrent logins and logouts of one group
//! are proposed together as one [`ShardCommand::Batch`] log entry.
//!
//! Up to [`MAX_IN_FLIGHT`] proposals of a group run at once; a write that
//! arrives while all of them are busy waits for the next, which carries every
//! write waiting by then. At low load each write is proposed alone, at once;
//! under load one entry (one append, one replication message, one apply)
//! carries many. The state machine applies a batch in order with one reply
//! per write, so each caller sees exactly what a proposal of its own would
//! have answered, at the entry's log index.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::Result;
use crate::error::RouterError;
use crate::ids::GroupId;
use crate::sm::shard::ShardCommand;
use crate::sm::shard::ShardReply;

/// Proposals of one group in flight at once (Raft pipelines them).
const MAX_IN_FLIGHT: usize = 4;

/// Largest number of writes in one entry.
const MAX_BATCH: usize = 512;

type Reply = Result<(ShardReply, u64)>;

#[derive(Default)]
pub struct WriteBatcher {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    waiting: Vec<(ShardCommand, oneshot::Sender<Reply>)>,
}

impl WriteBatcher {
    /// Proposes `cmd` to group `group` (alone or with concurrent writes,
    /// each entry through `propose`) and waits until it is applied here;
    /// returns its reply and the entry's log index.
    pub async fn propose<P, F>(self: &Arc<Self>, group: GroupId, cmd: ShardCommand, propose: P) -> Reply
    where
        P: Fn(ShardCommand) -> F + Send + 'static,
        F: Future<Output = Reply> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock().expect("write batch lock poisoned");
            st.waiting.push((cmd, tx));
            let start = st.in_flight < MAX_IN_FLIGHT;
            st.in_flight += usize::from(start);
            start
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.drain(propose).await });
        }
        rx.await
            .map_err(|_| RouterError::NotReady(format!("group {group}: proposal dropped")))?
    }

    async fn drain<P, F>(&self, propose: P)
    where
        P: Fn(ShardCommand) -> F,
        F: Future<Output = Reply>,
    {
        loop {
            let mut batch = {
                let mut st = self.state.lock().expect("write batch lock poisoned");
                if st.waiting.is_empty() {
                    st.in_flight -= 1;
                    return;
                }
                let n = st.waiting.len().min(MAX_BATCH);
                st.waiting.drain(..n).collect::<Vec<_>>()
            };
            crate::metrics::WRITE_BATCH.observe(batch.len() as f64);
            if batch.len() == 1 {
                let (cmd, tx) = batch.pop().expect("one write");
                let _ = tx.send(propose(cmd).await);
                continue;
            }
            let (cmds, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            match propose(ShardCommand::Batch(cmds)).await {
                Ok((ShardReply::Batch(replies), index)) if replies.len() == waiters.len() => {
                    for (reply, tx) in replies.into_iter().zip(waiters) {
                        let _ = tx.send(Ok((reply, index)));
                    }
                }
                Ok((other, _)) => {
                    let e = RouterError::Internal(format!("a batch of {} answered {other:?}", waiters.len()));
                    for tx in waiters {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for tx in waiters {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
