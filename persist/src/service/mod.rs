//! The gRPC services of persist: `data` (`DataService`) and `queue`
//! (`QueueService`: enqueue, subscribe to commits). Errors become
//! `tonic::Status` in one place: `From<Error> for Status` in `error.rs`.

mod convert;
mod data;
mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_common::ids;
use confab_queue::AnyProducer;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Response, Status};

use crate::db::Db;
use crate::db::history::StoredMessage;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::notify::Hub;

/// State shared by both services; cheap to clone.
#[derive(Clone)]
pub struct PersistService {
    pub(crate) db: Db,
    pub(crate) producer: Arc<AnyProducer>,
    pub(crate) hub: Hub,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
    read_wait: Duration,
}

/// Ids made longer ago than this never wait: a message that old is either
/// written or was never sent.
const RECENT_MS: u64 = 60_000;
/// An id this far ahead of our clock is taken as made up. A gateway's ids
/// may run ahead of the clock by its id reservation window (20 s) after a
/// restart.
const FUTURE_SLACK_MS: u64 = 30_000;
/// Whether `id` was made lately enough that it may still be on its way to
/// the database (an id far ahead of our clock is taken as made up).
fn recent(id: u64) -> bool {
    let (made, now) = (ids::time_ms(id), ids::now_ms());
    made <= now + FUTURE_SLACK_MS && now.saturating_sub(made) <= RECENT_MS
}

/// How often a waiting read looks again when no local commit wakes it (the
/// writer may run in another persist process).
const WAIT_POLL: Duration = Duration::from_millis(50);

impl PersistService {
    pub fn new(db: Db, producer: Arc<AnyProducer>, hub: Hub, shutdown: CancellationToken) -> Self {
        let metrics = db.metrics().clone();
        Self {
            db,
            producer,
            hub,
            metrics,
            shutdown,
            read_wait: Duration::from_secs(2),
        }
    }

    /// How long a read may wait for a message named by `min_message_id`.
    pub fn with_read_wait(mut self, wait: Duration) -> Self {
        self.read_wait = wait;
        self
    }

    /// Read your writes: returns once message `id` is written (0: at once),
    /// or after `read_wait`, or at once for an id that is not recent (a
    /// message queued that long ago is written or never existed). The
    /// reader then gets whatever is stored. False: the wait ran out with
    /// `id` not written.
    async fn wait_written(&self, id: u64) -> Result<bool, Error> {
        if id == 0 || !recent(id) {
            return Ok(true);
        }
        let found = self
            .wait_for(id, || async {
                Ok(self.db.message_written(id).await?.then_some(()))
            })
            .await?;
        let outcome = if found.is_some() { "written" } else { "timeout" };
        self.metrics.read_waits.with_label_values(&[outcome]).inc();
        Ok(found.is_some())
    }

    /// The message `sender` stored under `client_msg_id`; with `wait_for`
    /// (a recent id the resend was queued under), waits up to `read_wait`
    /// for the writer to store the pair (the original's batch or this one's).
    async fn find_sent(
        &self,
        sender: u64,
        client_msg_id: &str,
        wait_for: u64,
    ) -> Result<Option<StoredMessage>, Error> {
        if wait_for == 0 || !recent(wait_for) {
            return self.db.find_sent(sender, client_msg_id).await;
        }
        self.wait_for(wait_for, || self.db.find_sent(sender, client_msg_id))
            .await
    }

    /// Looks until `look` finds something, at most `read_wait`: again at
    /// once when a local commit names `id`, else every [`WAIT_POLL`] (the
    /// writer may run in another persist process).
    async fn wait_for<T, F, Fut>(&self, id: u64, mut look: F) -> Result<Option<T>, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, Error>>,
    {
        // Subscribe before looking, so a commit in between still wakes us.
        let mut commits = self.hub.subscribe();
        let deadline = Instant::now() + self.read_wait;
        loop {
            if let Some(found) = look().await? {
                return Ok(Some(found));
            }
            let look_again = (Instant::now() + WAIT_POLL).min(deadline);
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                if now >= look_again {
                    break;
                }
                let until = tokio::time::Instant::from_std(look_again);
                tokio::select! {
                    r = commits.recv() => match r {
                        Ok(batch) if batch.moved.iter().any(|m| m.message_id == id) => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => tokio::time::sleep_until(until).await,
                    },
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
        }
    }

    /// Counts the call and turns the result into a response.
    fn reply<T>(&self, method: &'static str, r: Result<T, Error>) -> Result<Response<T>, Status> {
        let r = r.map(Response::new).map_err(Status::from);
        let code = match &r {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        let code = format!("{code:?}");
        self.metrics
            .grpc_requests
            .with_label_values(&[method, code.as_str()])
            .inc();
        r
    }
}
