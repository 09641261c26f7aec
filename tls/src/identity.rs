//! Who a certificate speaks for: a [`Role`] and, for routers and gateways,
//! the node or gateway id.
//!
//! The identity is a URI subject alternative name, `confab://ROLE[/ID]`
//! (`confab://router/3`, `confab://gateway/7`, `confab://persist`,
//! `confab://admin`). A URI SAN rather than the common name: it is typed,
//! cannot be confused with a host name the certificate also carries, and
//! one certificate has exactly one.

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};

/// The scheme of an identity URI.
pub const SCHEME: &str = "confab://";

/// What a process is allowed to do inside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A router node: Raft, the replica plane.
    Router,
    /// A gateway: the routers' data plane, persist, other gateways.
    Gateway,
    /// A persist process (DAS): notifies gateways.
    Persist,
    /// An operator's tool (`confabctl`): the routers' admin plane.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Router, Role::Gateway, Role::Persist, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Gateway => "gateway",
            Role::Persist => "persist",
            Role::Admin => "admin",
        }
    }

    /// Routers and gateways are always named by id: a router may speak Raft
    /// only as its own node, a gateway may register only its own id.
    pub fn needs_id(self) -> bool {
        matches!(self, Role::Router | Role::Gateway)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::Identity(format!("unknown role {s:?} (router, gateway, persist, admin)")))
    }
}

/// The identity one certificate names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub role: Role,
    /// The router node id or the gateway id; optional for persist, never
    /// for admin.
    pub id: Option<u64>,
}

impl Identity {
    pub fn new(role: Role, id: Option<u64>) -> Result<Self> {
        if role.needs_id() && id.is_none() {
            return Err(Error::Identity(format!("a {role} certificate must name its id")));
        }
        if role == Role::Admin && id.is_some() {
            return Err(Error::Identity("an admin certificate names no id".into()));
        }
        if id == Some(0) {
            return Err(Error::Identity("id 0 is not a node or gateway id".into()));
        }
        Ok(Identity { role, id })
    }

    pub fn router(id: u64) -> Self {
        Identity {
            role: Role::Router,
            id: Some(id),
        }
    }

    pub fn gateway(id: u64) -> Self {
        Identity {
            role: Role::Gateway,
            id: Some(id),
        }
    }

    pub fn persist() -> Self {
        Identity {
            role: Role::Persist,
            id: None,
        }
    }

    pub fn admin() -> Self {
        Identity {
            role: Role::Admin,
            id: None,
        }
    }

    /// The URI subject alternative name of this identity.
    pub fn uri(&self) -> String {
        match self.id {
            Some(id) => format!("{SCHEME}{}/{id}", self.role),
            None => format!("{SCHEME}{}", self.role),
        }
    }

    /// Parses `confab://ROLE[/ID]`.
    pub fn from_uri(uri: &str) -> Result<Self> {
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| Error::Identity(format!("{uri:?} is not a {SCHEME} identity")))?;
        let (role, id) = match rest.split_once('/') {
            Some((role, id)) => {
                let id = id
                    .parse::<u64>()
                    .map_err(|_| Error::Identity(format!("{uri:?}: the id is not a number")))?;
                (role, Some(id))
            }
            None => (rest, None),
        };
        Identity::new(role.parse()?, id)
    }

    /// The identity a DER certificate names: its one `confab://` URI SAN.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::Identity(format!("unreadable certificate: {e}")))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| Error::Identity(format!("unreadable subject alternative names: {e}")))?;
        let mut found = None;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let GeneralName::URI(uri) = name
                && uri.starts_with(SCHEME)
            {
                if found.is_some() {
                    return Err(Error::Identity(
                        "the certificate names two Confab identities".into(),
                    ));
                }
                found = Some(Identity::from_uri(uri)?);
            }
        }
        found.ok_or_else(|| Error::Identity(format!("the certificate names no {SCHEME} identity")))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "{}/{id}", self.role),
            None => write!(f, "{}", self.role),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_uri() {
        for id in [
            Identity::router(3),
            Identity::gateway(70000),
            Identity::persist(),
            Identity::admin(),
        ] {
            assert_eq!(Identity::from_uri(&id.uri()).unwrap(), id);
        }
        assert_eq!(Identity::router(3).uri(), "confab://router/3");
        assert_eq!(
            Identity::from_uri("confab://persist/2").unwrap(),
            Identity {
                role: Role::Persist,
                id: Some(2)
            }
        );
    }

    #[test]
    fn malformed_identities_are_refused() {
        for bad in [
            "confab://router",
            "confab://gateway",
            "confab://admin/1",
            "confab://router/0",
            "confab://router/x",
            "confab://root",
            "https://router/1",
            "confab://router/1/2",
        ] {
            assert!(Identity::from_uri(bad).is_err(), "{bad}");
        }
    }
}
