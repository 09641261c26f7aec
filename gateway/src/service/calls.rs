//! How services and handlers call the gateway's dependencies: bounded by
//! the configured RPC timeout ([`timed`]), and persist's data service with
//! its refusals turned into the gateway's errors ([`persist`]).

use std::future::Future;

use confab_proto::persist::data_service_client::DataServiceClient;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::state::Shared;

/// Bounds a call to a dependency by the configured RPC timeout.
pub async fn timed<T>(
    shared: &Shared,
    what: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(shared.rpc_timeout(), fut)
        .await
        .map_err(|_| Error::Unavailable {
            what,
            detail: "timed out".into(),
        })?
}

/// One call to persist's data service, bounded by the RPC timeout; a
/// refused call becomes the client's error through `on_error` (most pass
/// [`Error::from_persist`] with what a NotFound means for them).
pub async fn persist<T, Fut>(
    shared: &Shared,
    call: impl FnOnce(DataServiceClient<Channel>) -> Fut,
    on_error: impl FnOnce(tonic::Status) -> Error,
) -> Result<T>
where
    Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let reply = timed(shared, "persist", async {
        call(shared.data()).await.map_err(on_error)
    })
    .await?;
    Ok(reply.into_inner())
}
