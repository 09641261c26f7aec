//! confab-tls: transport security between Confab processes.
//!
//! Parts:
//! - [`identity`]: who a certificate speaks for, a [`Role`] (router,
//!   gateway, persist, admin) and the node or gateway id, as a
//!   `confab://ROLE/ID` URI subject alternative name.
//! - [`files`]: the `[tls]` section of a service's configuration
//!   ([`TlsFiles`]: CA, certificate, key) and what it loads.
//! - [`issue`]: a cluster CA and the certificates it issues (`confabctl
//!   certs`, the local cluster, tests).
//! - [`server`]: a reloadable rustls server configuration ([`ServerTls`]) and
//!   [`incoming`], the accepted connections a tonic server serves, each with
//!   the identity its certificate names.
//! - [`authz`]: the rule every internal service applies: [`Authorize`] per
//!   service (roles), [`require_id`] where a request names a node or gateway.
//! - [`args`]: [`TlsArgs`], the `--tls-ca/--tls-cert/--tls-key` flags.
//! - [`client`]: [`ClientTls`], the calling side (used by `confab-net`).
//! - [`cluster`]: [`ClusterTls`], one process' side of it all, loaded at
//!   start from its `[tls]` section and checked against its role and id.
//! - [`failure`]: [`handshake_failure`], a failed handshake (a certificate
//!   that does not verify) found in a client library's error.

pub mod args;
pub mod authz;
pub mod client;
pub mod cluster;
mod error;
pub mod failure;
pub mod files;
pub mod identity;
pub mod issue;
pub mod server;

pub use args::TlsArgs;
pub use authz::{Authorize, caller, require_id};
pub use client::ClientTls;
pub use cluster::ClusterTls;
pub use error::{Error, Result};
pub use failure::{HandshakeFailure, handshake_failure};
pub use files::{Material, TlsFiles};
pub use identity::{Identity, Role};
pub use issue::Ca;
pub use server::{Conn, PeerInfo, ServerTls, incoming};
