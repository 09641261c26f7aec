//! Linearizable reads, batched per group: while one leadership check is in
//! flight, later readers queue for the next; that next check serves them all.
//!
//! Safe because every reader's check starts after the reader arrived: a reader
//! never joins a check already under way, only one not yet started.

use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::Result;
use crate::error::RouterError;
use crate::node::Group;
use crate::node::Node;

#[derive(Default)]
pub struct ReadBatcher {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<oneshot::Sender<Result<()>>>,
}

impl ReadBatcher {
    /// Returns once a read of `group` on this node is linearizable.
    pub async fn linearize(&self, node: &Arc<Node>, group: &Group) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock().expect("read batch lock poisoned");
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            let (node, group) = (node.clone(), group.clone());
            tokio::spawn(async move { group.reads.clone().drain(&node, &group).await });
        }
        rx.await
            .map_err(|_| RouterError::NotReady(format!("group {}: read check dropped", group.id)))?
    }

    async fn drain(&self, node: &Node, group: &Group) {
        loop {
            let batch = {
                let mut st = self.state.lock().expect("read batch lock poisoned");
                if st.waiting.is_empty() {
                    st.running = false;
                    return;
                }
                std::mem::take(&mut st.waiting)
            };
            crate::metrics::READ_BATCH.observe(batch.len() as f64);
            let res = node.linearize(group).await;
            for waiter in batch {
                let _ = waiter.send(res.clone());
            }
        }
    }
}
