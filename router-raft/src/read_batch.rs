//! Linearizable reads, batched per group: while one leadership check is in
//! flight, later readers queue for the next; that next check serves them all.
//!
//! Safe because every reader's check starts after the reader arrived: a reader
//! never joins a check already under way, only one not yet started.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::Result;
use crate::error::RouterError;
use crate::ids::GroupId;

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
    /// Returns once a read of group `group` on this node is linearizable:
    /// `check` (one leadership check) is run for every batch of readers.
    pub async fn linearize<C, F>(self: &Arc<Self>, group: GroupId, check: C) -> Result<()>
    where
        C: Fn() -> F + Send + 'static,
        F: Future<Output = Result<()>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock().expect("read batch lock poisoned");
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.drain(check).await });
        }
        rx.await
            .map_err(|_| RouterError::NotReady(format!("group {group}: read check dropped")))?
    }

    async fn drain<C, F>(&self, check: C)
    where
        C: Fn() -> F,
        F: Future<Output = Result<()>>,
    {
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
            let res = check().await;
            for waiter in batch {
                let _ = waiter.send(res.clone());
            }
        }
    }
}
