//! One process' side of the cluster's mutual TLS, loaded once at start:
//! the listener's configuration, the calling side, and the identity both
//! present.

use std::sync::Arc;

use crate::client::ClientTls;
use crate::error::{Error, Result};
use crate::files::{Material, TlsFiles};
use crate::identity::{Identity, Role};
use crate::server::ServerTls;

/// A process' cluster TLS: what it serves with and what it calls with.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    pub server: Arc<ServerTls>,
    pub client: ClientTls,
    pub identity: Identity,
    pub files: TlsFiles,
}

impl ClusterTls {
    /// Loads the files of the `[tls]` section and checks that the
    /// certificate names this process: `role`, and `id` where the role has
    /// one. A process never starts under another's identity.
    pub fn load(files: &TlsFiles, role: Role, id: Option<u64>) -> Result<Self> {
        let material = Material::read(files)?;
        let identity = material.identity;
        let expected = Identity { role, id };
        let fits = identity.role == role && (!role.needs_id() || identity.id == id);
        if !fits {
            return Err(Error::Identity(format!(
                "{} names {identity}, but this process is {expected}",
                files.cert.display()
            )));
        }
        Ok(ClusterTls {
            server: Arc::new(ServerTls::cluster(files)?),
            client: ClientTls::from_material(&material),
            identity,
            files: files.clone(),
        })
    }

    /// [`ClusterTls::load`] when a `[tls]` section is given, the listener's
    /// certificate then reloaded on SIGHUP (within a Tokio runtime); without
    /// one, warns that the internal plane is unauthenticated. (The calling
    /// side keeps the certificate it started with: rotate it by restarting.)
    pub fn load_optional(files: Option<&TlsFiles>, role: Role, id: Option<u64>) -> Result<Option<Self>> {
        match files {
            Some(files) => {
                let tls = Self::load(files, role, id)?;
                tls.server.reload_on_sighup("grpc");
                Ok(Some(tls))
            }
            None => {
                tracing::warn!(
                    "no [tls] section: internal gRPC is plain and unauthenticated; \
                     run so only on a network every peer of which is trusted"
                );
                Ok(None)
            }
        }
    }

    /// The listener's configuration, if any.
    pub fn server(tls: Option<&Self>) -> Option<Arc<ServerTls>> {
        tls.map(|t| t.server.clone())
    }

    /// The calling side, if any.
    pub fn client(tls: Option<&Self>) -> Option<ClientTls> {
        tls.map(|t| t.client.clone())
    }
}
