//! A cluster CA and the certificates it issues (`confabctl certs`, the
//! local cluster, tests). ECDSA P-256 keys; every leaf certificate is good
//! for both ends of a connection (server and client authentication) and
//! carries one `confab://` identity plus the host names and addresses its
//! listeners are reached at.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};
use crate::identity::Identity;

/// How long a certificate the dev CA issues stays valid.
pub const DEFAULT_DAYS: i64 = 365;

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pem {
    /// Writes `DIR/NAME.pem` and `DIR/NAME.key` (the key readable by its
    /// owner only); returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        write(&cert, &self.cert, 0o644)?;
        write(&key, &self.key, 0o600)?;
        Ok((cert, key))
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    // A fresh file: a key must not stay readable through an old file's mode.
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// A certificate authority that can issue certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: Pem,
}

impl Ca {
    /// A new self-signed CA named `name`, valid for `days`.
    pub fn new(name: &str, days: i64) -> Result<Self> {
        let key = KeyPair::generate().map_err(issue_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "Confab");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, days);
        let cert = params.self_signed(&key).map_err(issue_err)?;
        let pem = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        Ok(Ca {
            issuer: Issuer::new(params, key),
            pem,
        })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(cert: &str, key: &str) -> Result<Self> {
        let signing = KeyPair::from_pem(key).map_err(issue_err)?;
        let issuer = Issuer::from_ca_cert_pem(cert, signing).map_err(issue_err)?;
        Ok(Ca {
            issuer,
            pem: Pem {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
        })
    }

    /// Reads `DIR/ca.pem` and `DIR/ca.key`.
    pub fn read(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
        };
        Ca::from_pem(&read("ca.pem")?, &read("ca.key")?)
    }

    /// The CA's own certificate and key.
    pub fn pem(&self) -> &Pem {
        &self.pem
    }

    /// A leaf certificate for `identity` (or, with `None`, a plain server
    /// certificate such as a gateway's client port), naming `hosts` (DNS
    /// names or IP addresses), valid for `days`.
    pub fn issue(&self, identity: Option<Identity>, hosts: &[String], days: i64) -> Result<Pem> {
        let key = KeyPair::generate().map_err(issue_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let common_name = match (identity, hosts.first()) {
            (Some(id), _) => id.to_string(),
            (None, Some(host)) => host.clone(),
            (None, None) => return Err(Error::Issue("a certificate needs an identity or a host".into())),
        };
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::OrganizationName, "Confab");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        if let Some(identity) = identity {
            params.subject_alt_names.push(SanType::URI(ia5(&identity.uri())?));
        }
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(ia5(host)?),
            };
            params.subject_alt_names.push(san);
        }
        validity(&mut params, days);
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_err)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // A little slack for clocks that are behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn ia5(s: &str) -> Result<Ia5String> {
    Ia5String::try_from(s).map_err(|e| Error::Issue(format!("{s:?}: {e}")))
}

fn issue_err(e: rcgen::Error) -> Error {
    Error::Issue(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{KeyPair as Files, Material, TlsFiles};

    #[test]
    fn issued_certificates_name_their_identity_and_reload_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA", 1).unwrap();
        ca.pem().write(dir.path(), "ca").unwrap();
        let leaf = ca
            .issue(
                Some(Identity::router(2)),
                &["127.0.0.1".into(), "localhost".into()],
                1,
            )
            .unwrap();
        leaf.write(dir.path(), "router-2").unwrap();

        let material = Material::read(&TlsFiles::in_dir(dir.path(), "router-2")).unwrap();
        assert_eq!(material.identity, Identity::router(2));
        assert_eq!(material.ca.len(), 1);

        // The CA read back from its files issues certificates too.
        let again = Ca::read(dir.path()).unwrap();
        let admin = again.issue(Some(Identity::admin()), &[], 1).unwrap();
        admin.write(dir.path(), "admin").unwrap();
        let pair = Files::read(&dir.path().join("admin.pem"), &dir.path().join("admin.key")).unwrap();
        assert_eq!(pair.identity().unwrap(), Identity::admin());

        let mode = std::fs::metadata(dir.path().join("admin.key"))
            .unwrap()
            .permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn a_plain_server_certificate_has_no_identity() {
        let ca = Ca::new("test CA", 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        ca.issue(None, &["chat.example".into()], 1)
            .unwrap()
            .write(dir.path(), "public")
            .unwrap();
        let pair = Files::read(&dir.path().join("public.pem"), &dir.path().join("public.key")).unwrap();
        assert!(pair.identity().is_err());
        assert!(ca.issue(None, &[], 1).is_err());
    }
}
