//! The internal gRPC service other gateways call: Deliver (pushes and kicks
//! for sessions hosted here) and Load (for `/v1/gateway`).

use std::sync::Arc;

use confab_proto::gateway::gateway_service_server::GatewayService;
use confab_proto::gateway::{DeliverReply, DeliverRequest, LoadReply, LoadRequest};
use tonic::{Request, Response, Status};

use crate::deliver;
use crate::state::Shared;

pub struct Internal {
    pub shared: Arc<Shared>,
}

#[tonic::async_trait]
impl GatewayService for Internal {
    async fn deliver(&self, req: Request<DeliverRequest>) -> Result<Response<DeliverReply>, Status> {
        let r = req.into_inner();
        let (delivered, missing) = deliver::local_pushes(&self.shared, r.pushes);
        Ok(Response::new(DeliverReply { delivered, missing }))
    }

    async fn load(&self, _req: Request<LoadRequest>) -> Result<Response<LoadReply>, Status> {
        Ok(Response::new(load(&self.shared)))
    }
}

pub fn load(shared: &Shared) -> LoadReply {
    LoadReply {
        gateway_id: shared.gateway_id(),
        connections: crate::metrics::CONNECTIONS
            .with_label_values(&["tcp"])
            .get()
            .saturating_add(crate::metrics::CONNECTIONS.with_label_values(&["ws"]).get())
            .max(0) as u32,
        client_addr: shared.client_addr.clone(),
        ws_url: String::new(),
    }
}
