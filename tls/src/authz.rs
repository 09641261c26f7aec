//! Authorization by certificate role, per service and, where a request
//! speaks for a node or gateway, per id.
//!
//! The rule: a request on a TLS connection must come with a certificate of
//! the cluster CA that names an identity ([`UNAUTHENTICATED`] otherwise), of
//! a role the service serves ([`PERMISSION_DENIED`] otherwise); a request
//! that names a node or gateway id must name the certificate's own. Every
//! refusal is counted by service and reason and changes nothing: the check
//! runs before the handler (the [`Authorize`] interceptor) or first thing in
//! it ([`require_id`]).
//!
//! A process started without TLS trusts its network: its connections are
//! plain and nothing is checked. That mode is for a single host or tests;
//! the process logs a warning when it starts so.
//!
//! [`UNAUTHENTICATED`]: tonic::Code::Unauthenticated
//! [`PERMISSION_DENIED`]: tonic::Code::PermissionDenied

use std::sync::LazyLock;

use prometheus::{IntCounterVec, register_int_counter_vec};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::identity::{Identity, Role};
use crate::server::PeerInfo;

static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "confab_rpc_refused_total",
        "Internal calls refused by authorization, by service and reason \
         (unauthenticated: no certificate naming an identity; role: a role the service does not serve; \
         id: a request for another node or gateway than the certificate names)",
        &["service", "reason"]
    )
    .expect("register confab_rpc_refused_total")
});

/// The interceptor of one service: which roles it serves.
#[derive(Debug, Clone, Copy)]
pub struct Authorize {
    service: &'static str,
    roles: &'static [Role],
}

impl Authorize {
    /// `service` names the service in errors and in the counter.
    pub fn new(service: &'static str, roles: &'static [Role]) -> Self {
        for reason in ["unauthenticated", "role", "id"] {
            REFUSED.with_label_values(&[service, reason]);
        }
        Authorize { service, roles }
    }

    /// Checks a request's caller; on a plain connection, `Ok(None)`.
    pub fn check<T>(&self, req: &Request<T>) -> Result<Option<Identity>, Status> {
        let Some(peer) = peer(req) else {
            return Ok(None);
        };
        if !peer.tls {
            return Ok(None);
        }
        match peer.identity {
            None => Err(refuse(
                self.service,
                "unauthenticated",
                Status::unauthenticated(format!(
                    "{}: a client certificate of the cluster CA naming a Confab identity is required",
                    self.service
                )),
            )),
            Some(id) if self.roles.contains(&id.role) => Ok(Some(id)),
            Some(id) => Err(refuse(
                self.service,
                "role",
                Status::permission_denied(format!(
                    "{} serves {}; the certificate names {id}",
                    self.service,
                    names(self.roles)
                )),
            )),
        }
    }
}

impl Interceptor for Authorize {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(&req)?;
        Ok(req)
    }
}

/// The connection facts of a request served through [`crate::incoming`].
pub fn peer<T>(req: &Request<T>) -> Option<&PeerInfo> {
    req.extensions().get::<PeerInfo>()
}

/// The verified identity of a request's caller, if its connection is TLS
/// and its certificate names one.
pub fn caller<T>(req: &Request<T>) -> Option<Identity> {
    peer(req).filter(|p| p.tls).and_then(|p| p.identity)
}

/// Checks that a request which speaks for `role` `id` (a Raft message from
/// node `id`, a gateway registering as `id`) comes from that very node or
/// gateway. Plain connections pass (see the module's rule).
pub fn require_id<T>(req: &Request<T>, service: &'static str, role: Role, id: u64) -> Result<(), Status> {
    require(peer(req), service, role, id)
}

/// [`require_id`] on connection facts taken from a request earlier (a
/// handler that learns the id only by decoding the request's body).
pub fn require(peer: Option<&PeerInfo>, service: &'static str, role: Role, id: u64) -> Result<(), Status> {
    let Some(peer) = peer.filter(|p| p.tls) else {
        return Ok(());
    };
    match peer.identity {
        Some(own) if own.role == role && own.id == Some(id) => Ok(()),
        Some(own) => Err(refuse(
            service,
            "id",
            Status::permission_denied(format!(
                "{service}: the request speaks for {role}/{id}; the certificate names {own}"
            )),
        )),
        None => Err(refuse(
            service,
            "unauthenticated",
            Status::unauthenticated(format!(
                "{service}: a client certificate naming {role}/{id} is required"
            )),
        )),
    }
}

fn refuse(service: &'static str, reason: &str, status: Status) -> Status {
    REFUSED.with_label_values(&[service, reason]).inc();
    tracing::warn!(service, reason, message = status.message(), "call refused");
    status
}

fn names(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tls: bool, identity: Option<Identity>) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut().insert(PeerInfo {
            remote: None,
            tls,
            identity,
        });
        req
    }

    #[test]
    fn roles_are_checked_on_tls_connections_only() {
        let admin = Authorize::new("test.Admin", &[Role::Admin]);
        assert!(admin.check(&request(false, None)).unwrap().is_none());
        assert!(admin.check(&Request::new(())).unwrap().is_none());
        assert_eq!(
            admin.check(&request(true, Some(Identity::admin()))).unwrap(),
            Some(Identity::admin())
        );
        let err = admin
            .check(&request(true, Some(Identity::gateway(1))))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(err.message().contains("gateway/1"), "{}", err.message());
        let err = admin.check(&request(true, None)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_request_for_another_id_is_refused() {
        let ok = request(true, Some(Identity::router(2)));
        assert!(require_id(&ok, "test.Raft", Role::Router, 2).is_ok());
        let err = require_id(&ok, "test.Raft", Role::Router, 3).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let gw = request(true, Some(Identity::gateway(2)));
        assert!(require_id(&gw, "test.Raft", Role::Router, 2).is_err());
        assert!(require_id(&request(false, None), "test.Raft", Role::Router, 2).is_ok());
    }
}
