//! The gRPC services of persist: `data` (`DataService`) and `queue`
//! (`QueueService`: enqueue, subscribe to commits). Errors become
//! `tonic::Status` in one place: `From<Error> for Status` in `error.rs`.

mod convert;
mod data;
mod queue;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Code, Response, Status};

use crate::db::Db;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::notify::Hub;
use crate::queue::AnyProducer;

/// State shared by both services; cheap to clone.
#[derive(Clone)]
pub struct PersistService {
    pub(crate) db: Db,
    pub(crate) producer: Arc<AnyProducer>,
    pub(crate) hub: Hub,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
}

impl PersistService {
    pub fn new(db: Db, producer: Arc<AnyProducer>, hub: Hub, shutdown: CancellationToken) -> Self {
        let metrics = db.metrics().clone();
        Self {
            db,
            producer,
            hub,
            metrics,
            shutdown,
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
