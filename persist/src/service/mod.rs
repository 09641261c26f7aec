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
/// An id this far ahead of our clock is taken as made up.
const FUTURE_SLACK_MS: u64 = 5_000;
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
    /// reader then gets whatever is stored.
    async fn wait_written(&self, id: u64) -> Result<(), Error> {
        if id == 0 {
            return Ok(());
        }
        let (made, now) = (ids::time_ms(id), ids::now_ms());
        if made > now + FUTURE_SLACK_MS || now.saturating_sub(made) > RECENT_MS {
            return Ok(());
        }
        // Subscribe before looking, so a commit in between still wakes us.
        let mut commits = self.hub.subscribe();
        let deadline = Instant::now() + self.read_wait;
        let outcome = 'wait: loop {
            if self.db.message_written(id).await? {
                break 'wait "written";
            }
            // Until the next look: a local commit naming the id ends the
            // wait; a lag, or a commit by another process's writer (seen
            // only by looking), waits for the next look.
            let look_again = (Instant::now() + WAIT_POLL).min(deadline);
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break 'wait "timeout";
                }
                if now >= look_again {
                    break;
                }
                let until = tokio::time::Instant::from_std(look_again);
                tokio::select! {
                    r = commits.recv() => match r {
                        Ok(batch) if batch.moved.iter().any(|m| m.message_id == id) => break 'wait "written",
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => tokio::time::sleep_until(until).await,
                    },
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
        };
        self.metrics.read_waits.with_label_values(&[outcome]).inc();
        Ok(())
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
