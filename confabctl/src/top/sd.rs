//! The process list: a router's `GET /sd` (Prometheus http_sd JSON), one
//! group per process, labelled with its role, its id and its zone.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::http;

/// One process and where its metrics are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// router, gateway or persist.
    pub role: String,
    /// The router node id or the gateway id (persist: its instance).
    pub node: String,
    pub zone: Option<String>,
    /// host:port of its /metrics.
    pub addr: String,
}

#[derive(Deserialize)]
struct SdGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `http://ADDR/sd`, as messages and reports name it.
pub fn url(addr: &str) -> String {
    format!("http://{addr}/sd")
}

/// Every process the router at `addr` lists.
pub async fn fetch(addr: &str, deadline: Duration) -> anyhow::Result<Vec<Target>> {
    let body = http::get(addr, "/sd", deadline)
        .await
        .with_context(|| format!("cannot read the process list from {}", url(addr)))?;
    parse(&body).with_context(|| format!("{} did not answer http_sd JSON", url(addr)))
}

/// The targets of an http_sd answer, sorted by role, then node.
pub fn parse(body: &str) -> anyhow::Result<Vec<Target>> {
    let groups: Vec<SdGroup> = serde_json::from_str(body)?;
    let mut targets: Vec<Target> = groups
        .into_iter()
        .flat_map(|g| {
            let label = |key: &str| g.labels.get(key).cloned();
            let (role, node, zone) = (label("role"), label("node"), label("zone"));
            g.targets.into_iter().map(move |addr| Target {
                role: role.clone().unwrap_or_default(),
                node: node.clone().unwrap_or_else(|| "?".to_owned()),
                zone: zone.clone(),
                addr,
            })
        })
        .collect();
    targets.sort_by(|a, b| {
        let id = |t: &Target| t.node.parse::<u64>().unwrap_or(u64::MAX);
        (&a.role, id(a), a).cmp(&(&b.role, id(b), b))
    });
    Ok(targets)
}

/// `--http` as host:port: a pasted `http://host:port/sd` works too.
pub fn http_addr(arg: &str) -> String {
    let rest = arg.strip_prefix("http://").unwrap_or(arg);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_target_with_its_labels() {
        let body = r#"[
            {"targets":["127.0.0.1:9110"],"labels":{"node":"10","role":"router"}},
            {"targets":["127.0.0.1:9102"],"labels":{"node":"2","role":"router","zone":"b"}},
            {"targets":["127.0.0.1:9201"],"labels":{"node":"1","role":"gateway"}},
            {"targets":["127.0.0.1:9301"],"labels":{"role":"persist"}}
        ]"#;
        let targets = parse(body).expect("parse");
        let got: Vec<(&str, &str, &str)> = targets
            .iter()
            .map(|t| (t.role.as_str(), t.node.as_str(), t.addr.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("gateway", "1", "127.0.0.1:9201"),
                ("persist", "?", "127.0.0.1:9301"),
                ("router", "2", "127.0.0.1:9102"),
                ("router", "10", "127.0.0.1:9110"),
            ]
        );
        assert_eq!(targets[2].zone.as_deref(), Some("b"));
        assert!(parse("[]").expect("empty").is_empty());
        assert!(parse("<html>").is_err());
    }

    #[test]
    fn http_addr_takes_a_url_too() {
        assert_eq!(http_addr("127.0.0.1:9101"), "127.0.0.1:9101");
        assert_eq!(http_addr("http://10.0.0.5:9101/sd"), "10.0.0.5:9101");
    }

    #[tokio::test]
    async fn an_unreachable_router_is_named_in_the_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let e = fetch(&addr, Duration::from_secs(5)).await.expect_err("closed");
        assert_eq!(
            format!("{e:#}"),
            format!("cannot read the process list from http://{addr}/sd: connection refused")
        );
    }
}
