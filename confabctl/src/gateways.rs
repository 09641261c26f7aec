//! `confabctl gateways`: registered gateways and their leases.

use confab_router_client::{GatewayInfo, RouterClient};
use serde::Serialize;

use crate::table::render;

#[derive(Debug, Serialize)]
pub struct GatewaysReport {
    pub gateways: Vec<GatewayReport>,
}

#[derive(Debug, Serialize)]
pub struct GatewayReport {
    pub gateway_id: u64,
    pub addr: String,
    pub incarnation: u64,
    pub lease_remaining_ms: u64,
    pub expired: bool,
}

pub async fn run(client: &RouterClient) -> anyhow::Result<GatewaysReport> {
    Ok(build(&client.list_gateways().await?))
}

pub fn build(gateways: &[GatewayInfo]) -> GatewaysReport {
    let mut gateways: Vec<GatewayReport> = gateways
        .iter()
        .map(|g| GatewayReport {
            gateway_id: g.gateway_id,
            addr: g.addr.clone(),
            incarnation: g.incarnation,
            lease_remaining_ms: g.lease_remaining_ms,
            expired: g.expired,
        })
        .collect();
    gateways.sort_by_key(|g| g.gateway_id);
    GatewaysReport { gateways }
}

pub fn render_text(report: &GatewaysReport) -> String {
    if report.gateways.is_empty() {
        return "no gateways registered\n".to_owned();
    }
    let rows: Vec<Vec<String>> = report
        .gateways
        .iter()
        .map(|g| {
            vec![
                g.gateway_id.to_string(),
                g.addr.clone(),
                g.incarnation.to_string(),
                format!("{}ms", g.lease_remaining_ms),
                if g.expired { "expired" } else { "live" }.to_owned(),
            ]
        })
        .collect();
    render(&["ID", "ADDR", "INCARNATION", "LEASE", "STATE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gateways_sorted() {
        let info = |id, expired| GatewayInfo {
            gateway_id: id,
            addr: format!("127.0.0.1:721{id}"),
            incarnation: 3,
            lease_remaining_ms: if expired { 0 } else { 9000 },
            expired,
        };
        let report = build(&[info(2, true), info(1, false)]);
        assert_eq!(
            render_text(&report),
            "ID  ADDR            INCARNATION  LEASE   STATE\n\
             1   127.0.0.1:7211  3            9000ms  live\n\
             2   127.0.0.1:7212  3            0ms     expired\n"
        );
        assert_eq!(render_text(&build(&[])), "no gateways registered\n");
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.starts_with(r#"{"gateways":[{"gateway_id":1,"#), "{json}");
    }
}
