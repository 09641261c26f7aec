//! The internal gRPC service; only other gateways call it. Deliver (pushes
//! and kicks for sessions hosted here; friend, group and presence pushes;
//! cache invalidations) comes from their push paths, Load from their
//! `/v1/gateway`. Each push goes to the service that owns its kind.
//!
//! Neither call can fail, so no gateway error becomes a `Status` here: a
//! push for a session that is gone is counted in `missing`, and the load is
//! read from this gateway's own counters. (The calling side handles a
//! failed call: [`crate::state::Shared::to_gateway`] logs it and retries
//! once; `/v1/gateway` leaves a gateway that does not answer out of its
//! pick.)

use std::sync::Arc;

use confab_common::trace;
use confab_proto::client::frame::Body;
use confab_proto::gateway::gateway_service_server::GatewayService;
use confab_proto::gateway::{DeliverReply, DeliverRequest, LoadReply, LoadRequest, Push, push};
use tonic::{Request, Response, Status};

use crate::service::{deliver, invalidate, notify, presence};
use crate::state::Shared;
use crate::wire::frame;

pub struct Internal {
    pub shared: Arc<Shared>,
}

#[tonic::async_trait]
impl GatewayService for Internal {
    async fn deliver(&self, req: Request<DeliverRequest>) -> Result<Response<DeliverReply>, Status> {
        let span = trace::continued(confab_net::trace::parent(&req), || {
            tracing::info_span!(
                target: trace::TARGET,
                "gateway.deliver",
                gateway = self.shared.gateway_id(),
                pushes = req.get_ref().pushes.len(),
                trace_id = tracing::field::Empty
            )
        });
        let _traced = span.enter();
        let r = req.into_inner();
        let (social, messages): (Vec<Push>, Vec<Push>) = r.pushes.into_iter().partition(|p| {
            matches!(
                p.body,
                Some(
                    push::Body::FriendEvent(_)
                        | push::Body::GroupEvent(_)
                        | push::Body::Presence(_)
                        | push::Body::Invalidate(_)
                        | push::Body::ReadReceipt(_)
                        | push::Body::Typing(_)
                        | push::Body::Recalled(_)
                )
            )
        });
        let (mut delivered, mut missing) = deliver::local_pushes(&self.shared, messages);
        for p in social {
            let (d, m) = self.social_push(p);
            delivered += d;
            missing += m;
        }
        Ok(Response::new(DeliverReply { delivered, missing }))
    }

    async fn load(&self, _req: Request<LoadRequest>) -> Result<Response<LoadReply>, Status> {
        Ok(Response::new(load(&self.shared)))
    }
}

impl Internal {
    fn social_push(&self, p: Push) -> (u32, u32) {
        let shared = &self.shared;
        match p.body {
            Some(push::Body::FriendEvent(e)) => {
                notify::local(shared, &p.session_ids, &frame::push(Body::FriendEvent(e)))
            }
            Some(push::Body::GroupEvent(e)) => {
                notify::local(shared, &p.session_ids, &frame::push(Body::GroupEvent(e)))
            }
            Some(push::Body::ReadReceipt(r)) => {
                notify::local(shared, &p.session_ids, &frame::push(Body::ReadReceipt(r)))
            }
            Some(push::Body::Typing(t)) => {
                notify::local(shared, &p.session_ids, &frame::push(Body::TypingPush(t)))
            }
            Some(push::Body::Recalled(r)) => {
                notify::local(shared, &p.session_ids, &frame::push(Body::Recalled(r)))
            }
            Some(push::Body::Presence(presence)) => presence::receive(shared, &p.session_ids, &presence),
            Some(push::Body::Invalidate(i)) => {
                invalidate::receive(shared, &i);
                (0, 0)
            }
            _ => (0, 0),
        }
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
        ws_url: shared.ws_url.clone(),
        zone_addresses: shared
            .config
            .zone_addresses
            .iter()
            .map(|a| confab_proto::gateway::ZoneAddress {
                zone: a.zone.clone(),
                client_addr: a.client.clone(),
                ws_url: if a.ws.is_empty() {
                    shared.ws_url.clone()
                } else {
                    a.ws.clone()
                },
            })
            .collect(),
    }
}
