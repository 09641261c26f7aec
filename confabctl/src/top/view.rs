//! From two rounds of scrapes to the report: per router, gateway and
//! persist process, its gauges from the later scrape and its rates and
//! latency quantiles over the interval; then the tables for humans.
//!
//! The metric names are the processes' own (router-raft/src/metrics.rs,
//! gateway/src/metrics.rs, persist/src/metrics.rs with its
//! `confab_persist_` prefix). A metric a process does not have shows as
//! `-` (JSON null), as does a rate or quantile without two scrapes.

use std::time::Instant;

use serde::Serialize;

use super::rate::{deltas, quantile, rate};
use super::round::{Round, Scrape};
use super::samples::Samples;
use crate::table::{opt, render};

#[derive(Debug, Serialize)]
pub struct TopReport {
    /// The http_sd URL the processes came from.
    pub sd: String,
    /// Seconds between the two scrapes the rates are over.
    pub interval_secs: f64,
    pub routers: Vec<RouterReport>,
    pub gateways: Vec<GatewayReport>,
    pub persist: Vec<PersistReport>,
}

/// Which process a row is about, and why it has no numbers.
#[derive(Debug, Serialize)]
pub struct Process {
    pub node: String,
    pub addr: String,
    pub zone: Option<String>,
    /// Why its /metrics could not be read ("connection refused", ...).
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouterReport {
    #[serde(flatten)]
    pub process: Process,
    /// Raft groups this node leads.
    pub leading: Option<u64>,
    /// Session writes (logins, logouts, batch items) answered per second.
    pub writes_per_sec: Option<f64>,
    /// Linearizable reads (lookup parts) per second.
    pub reads_per_sec: Option<f64>,
    /// 99th percentile of proposal to applied, over the interval.
    pub write_p99_ms: Option<f64>,
    /// 99th percentile of a linearizable read, over the interval.
    pub read_p99_ms: Option<f64>,
    /// Entries the furthest replica is behind, over the groups this node
    /// leads (a node leading none has no figure).
    pub raft_lag: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct GatewayReport {
    #[serde(flatten)]
    pub process: Process,
    /// Open client connections, every transport.
    pub connections: Option<u64>,
    /// 1:1 and group sends acked per second.
    pub messages_per_sec: Option<f64>,
    /// Pushes into this gateway's own sessions per second.
    pub deliveries_per_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct PersistReport {
    #[serde(flatten)]
    pub process: Process,
    /// Messages enqueued and not yet written (embedded queue).
    pub queue_depth: Option<u64>,
    /// Messages written (first time) per second.
    pub writes_per_sec: Option<f64>,
    /// Messages moved to the dead-letter queue since the process started.
    pub dead_letters: Option<u64>,
    pub dead_letters_per_sec: Option<f64>,
    /// Seconds the oldest message a writer holds has waited (0: none).
    pub oldest_unwritten_secs: Option<f64>,
}

/// One process's two scrapes: the earlier one (when it succeeded) and the
/// later one.
struct Window<'a> {
    prev: Option<&'a Samples>,
    cur: &'a Samples,
    secs: f64,
}

impl Window<'_> {
    fn gauge(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        self.cur.sum(name, matching)
    }

    fn count(&self, name: &str, matching: &[(&str, &str)]) -> Option<u64> {
        whole(self.gauge(name, matching))
    }

    fn rate(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        rate(
            self.prev?.sum(name, matching),
            self.cur.sum(name, matching),
            self.secs,
        )
    }

    /// The sum of the rates that are known; `None` when none is.
    fn rates(&self, names: &[&str]) -> Option<f64> {
        names
            .iter()
            .filter_map(|name| self.rate(name, &[]))
            .reduce(|a, b| a + b)
    }

    /// The 99th percentile of histogram `name` over the interval, in ms.
    fn p99_ms(&self, name: &str) -> Option<f64> {
        let before = self.prev?.buckets(name);
        let increase = deltas(before.as_ref(), &self.cur.buckets(name)?);
        quantile(0.99, &increase).map(|secs| secs * 1000.0)
    }
}

/// A non-negative whole number from a gauge.
fn whole(value: Option<f64>) -> Option<u64> {
    value.filter(|v| v.is_finite()).map(|v| v.max(0.0).round() as u64)
}

/// The report from two rounds `prev` and `cur` of the same processes (a
/// process only in `cur` gets no rates).
pub fn build(sd: String, prev: &Round, cur: &Round) -> TopReport {
    let mut report = TopReport {
        sd,
        interval_secs: cur.at.saturating_duration_since(prev.at).as_secs_f64(),
        routers: Vec::new(),
        gateways: Vec::new(),
        persist: Vec::new(),
    };
    for (target, scrape) in &cur.scrapes {
        let earlier = prev
            .scrapes
            .iter()
            .find(|(t, _)| t == target)
            .and_then(|(_, s)| Some((s.samples.as_ref().ok()?, s.at)));
        let window = scrape.samples.as_ref().ok().map(|cur_samples| Window {
            prev: earlier.map(|(samples, _)| samples),
            cur: cur_samples,
            secs: earlier.map_or(0.0, |(_, at)| secs_between(at, scrape)),
        });
        let process = Process {
            node: target.node.clone(),
            addr: target.addr.clone(),
            zone: target.zone.clone(),
            error: scrape.samples.as_ref().err().map(ToString::to_string),
        };
        match target.role.as_str() {
            "router" => report.routers.push(router(process, window.as_ref())),
            "gateway" => report.gateways.push(gateway(process, window.as_ref())),
            "persist" => report.persist.push(persist(process, window.as_ref())),
            _ => {}
        }
    }
    report
}

fn secs_between(earlier: Instant, scrape: &Scrape) -> f64 {
    scrape.at.saturating_duration_since(earlier).as_secs_f64()
}

fn router(process: Process, w: Option<&Window<'_>>) -> RouterReport {
    RouterReport {
        process,
        leading: w.and_then(|w| w.count("confab_router_group", &[("field", "is_leader")])),
        writes_per_sec: w.and_then(|w| {
            let login = w.rate("confab_router_rpc_total", &[("method", "login")])?;
            Some(login + w.rate("confab_router_rpc_total", &[("method", "logout")])?)
        }),
        reads_per_sec: w.and_then(|w| w.rate("confab_router_read_seconds_count", &[])),
        write_p99_ms: w.and_then(|w| w.p99_ms("confab_router_proposal_seconds")),
        read_p99_ms: w.and_then(|w| w.p99_ms("confab_router_read_seconds")),
        raft_lag: w.and_then(|w| whole(w.cur.max("confab_router_replica_lag_entries", &[]))),
    }
}

fn gateway(process: Process, w: Option<&Window<'_>>) -> GatewayReport {
    GatewayReport {
        process,
        connections: w.and_then(|w| w.count("confab_gateway_connections", &[])),
        messages_per_sec: w.and_then(|w| {
            w.rates(&[
                "confab_gateway_send_seconds_count",
                "confab_gateway_group_send_seconds_count",
            ])
        }),
        deliveries_per_sec: w.and_then(|w| {
            w.rate(
                "confab_gateway_deliveries_total",
                &[("path", "local"), ("outcome", "ok")],
            )
        }),
    }
}

fn persist(process: Process, w: Option<&Window<'_>>) -> PersistReport {
    const DEAD: &str = "confab_persist_writer_dead_letters_total";
    PersistReport {
        process,
        queue_depth: w.and_then(|w| w.count("confab_persist_queue_waiting_messages", &[])),
        writes_per_sec: w.and_then(|w| w.rate("confab_persist_writer_messages_total", &[])),
        dead_letters: w.and_then(|w| w.count(DEAD, &[])),
        dead_letters_per_sec: w.and_then(|w| w.rate(DEAD, &[])),
        oldest_unwritten_secs: w
            .and_then(|w| w.gauge("confab_persist_queue_oldest_unwritten_age_seconds", &[])),
    }
}

/// The report as tables for humans.
pub fn render_text(report: &TopReport) -> String {
    let mut out = format!(
        "{}: routers {}, gateways {}, persist {}; rates over {:.1}s\n",
        report.sd,
        report.routers.len(),
        report.gateways.len(),
        report.persist.len(),
        report.interval_secs
    );
    let rows = report.routers.iter().map(|r| {
        let cells = [
            opt(r.leading),
            fixed(r.writes_per_sec, 1),
            fixed(r.reads_per_sec, 1),
            ms(r.write_p99_ms),
            ms(r.read_p99_ms),
            opt(r.raft_lag),
        ];
        (&r.process, cells.to_vec())
    });
    let headers = [
        "LEADS",
        "WRITES/S",
        "READS/S",
        "WRITE_P99",
        "READ_P99",
        "RAFT_LAG",
    ];
    section(&mut out, "ROUTERS", &headers, rows.collect());
    let rows = report.gateways.iter().map(|g| {
        let cells = [
            opt(g.connections),
            fixed(g.messages_per_sec, 1),
            fixed(g.deliveries_per_sec, 1),
        ];
        (&g.process, cells.to_vec())
    });
    section(
        &mut out,
        "GATEWAYS",
        &["CONNS", "MSGS/S", "DELIVERIES/S"],
        rows.collect(),
    );
    let rows = report.persist.iter().map(|p| {
        let cells = [
            opt(p.queue_depth),
            fixed(p.writes_per_sec, 1),
            opt(p.dead_letters),
            fixed(p.dead_letters_per_sec, 1),
            secs(p.oldest_unwritten_secs),
        ];
        (&p.process, cells.to_vec())
    });
    let headers = ["QUEUE", "WRITES/S", "DEAD_LETTERS", "DEAD/S", "OLDEST"];
    section(&mut out, "PERSIST", &headers, rows.collect());
    out
}

/// A titled table: NODE, ADDR, ZONE (when any process has one), the
/// role's columns, then ERROR.
fn section(out: &mut String, title: &str, headers: &[&str], rows: Vec<(&Process, Vec<String>)>) {
    out.push('\n');
    out.push_str(title);
    out.push('\n');
    if rows.is_empty() {
        out.push_str("none listed\n");
        return;
    }
    let zones = rows.iter().any(|(p, _)| p.zone.is_some());
    let mut all = vec!["NODE", "ADDR"];
    all.extend(zones.then_some("ZONE"));
    all.extend_from_slice(headers);
    all.push("ERROR");
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(p, cells)| {
            let mut row = vec![p.node.clone(), p.addr.clone()];
            row.extend(zones.then(|| p.zone.clone().unwrap_or_else(|| "-".to_owned())));
            row.extend(cells);
            row.push(p.error.clone().unwrap_or_default());
            row
        })
        .collect();
    out.push_str(&render(&all, &rows));
}

/// `-`, or the value with `decimals` decimals.
fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// `-`, or milliseconds with two or three significant digits.
fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v < 10.0 => format!("{v:.2}ms"),
        Some(v) if v < 100.0 => format!("{v:.1}ms"),
        Some(v) => format!("{v:.0}ms"),
    }
}

/// `-`, or seconds with one decimal.
fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}s"))
}

#[cfg(test)]
mod tests;
