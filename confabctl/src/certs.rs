//! `confabctl certs`: a cluster CA and the certificates of its processes,
//! and the admin certificate confabctl itself calls the routers with.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use confab_router_client::ClientTls;
use confab_tls::{Ca, Identity, Role};
use serde::Serialize;

use crate::cli::{AdminTlsArgs, CertsCommand};

/// What `certs` wrote.
#[derive(Debug, Serialize)]
pub struct CertsReport {
    pub action: &'static str,
    /// The identity the certificate names (`router/1`), if any.
    pub identity: Option<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA existed already and was kept.
    pub kept: bool,
}

pub fn run(command: &CertsCommand) -> anyhow::Result<CertsReport> {
    match command {
        CertsCommand::Init { dir, days, force } => init(dir, *days, *force),
        CertsCommand::Issue {
            role,
            id,
            hosts,
            name,
            dir,
            days,
        } => issue(dir, role, *id, hosts, name.as_deref(), *days),
    }
}

fn init(dir: &Path, days: i64, force: bool) -> anyhow::Result<CertsReport> {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    if !force && cert.exists() && key.exists() {
        // Loading it proves it is usable; a broken CA is an error, not kept.
        Ca::read(dir)
            .with_context(|| format!("the CA in {} is unusable (--force replaces it)", dir.display()))?;
        return Ok(CertsReport {
            action: "init",
            identity: None,
            cert,
            key,
            kept: true,
        });
    }
    let ca = Ca::new("Confab cluster CA", days)?;
    let (cert, key) = ca.pem().write(dir, "ca")?;
    Ok(CertsReport {
        action: "init",
        identity: None,
        cert,
        key,
        kept: false,
    })
}

fn issue(
    dir: &Path,
    role: &str,
    id: Option<u64>,
    hosts: &[String],
    name: Option<&str>,
    days: i64,
) -> anyhow::Result<CertsReport> {
    let ca =
        Ca::read(dir).with_context(|| format!("no CA in {} (run `confabctl certs init`)", dir.display()))?;
    let identity = match role {
        "client-port" => {
            if id.is_some() {
                bail!("a client-port certificate names no id");
            }
            if hosts.is_empty() {
                bail!("a client-port certificate needs at least one --host");
            }
            None
        }
        role => Some(Identity::new(role.parse::<Role>()?, id)?),
    };
    let stem = match (name, identity) {
        (Some(n), _) => n.to_owned(),
        (None, Some(Identity { role, id: Some(id) })) => format!("{role}-{id}"),
        (None, Some(Identity { role, id: None })) => role.to_string(),
        (None, None) => "client-port".to_owned(),
    };
    let pem = ca.issue(identity, hosts, days)?;
    let (cert, key) = pem.write(dir, &stem)?;
    Ok(CertsReport {
        action: "issue",
        identity: identity.map(|i| i.to_string()),
        cert,
        key,
        kept: false,
    })
}

pub fn render(r: &CertsReport) -> String {
    let what = match (&r.identity, r.action) {
        (Some(id), _) => format!("certificate for {id}"),
        (None, "init") => "cluster CA".to_owned(),
        (None, _) => "client-port certificate".to_owned(),
    };
    let verb = if r.kept { "kept" } else { "wrote" };
    format!("{verb} {what}: {} (key {})\n", r.cert.display(), r.key.display())
}

/// The admin certificate to call the routers with: the file flags, else
/// `--tls-dir` when it holds one, else none (plain gRPC).
pub fn admin_tls(args: &AdminTlsArgs) -> anyhow::Result<Option<ClientTls>> {
    if args.no_tls {
        return Ok(None);
    }
    let flags = confab_tls::TlsArgs {
        tls_ca: args.tls_ca.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
    };
    let tls = match flags.files()? {
        Some(files) => Some(
            ClientTls::admin(&files)
                .with_context(|| format!("loading the admin certificate {}", files.cert.display()))?,
        ),
        None => ClientTls::admin_from_dir(&args.tls_dir)
            .with_context(|| format!("loading the admin certificate in {}", args.tls_dir.display()))?,
    };
    Ok(tls)
}
