use std::time::Duration;

use super::*;
use crate::top::http::GetError;
use crate::top::sd::Target;

const ROUTER_BEFORE: &str = r#"
# TYPE confab_router_group gauge
confab_router_group{field="is_leader",group="0"} 1
confab_router_group{field="is_leader",group="1"} 0
confab_router_group{field="term",group="1"} 3
confab_router_rpc_total{method="login"} 100
confab_router_rpc_total{method="renew_lease"} 5
confab_router_proposal_seconds_bucket{command="login",le="0.001"} 10
confab_router_proposal_seconds_bucket{command="login",le="0.002"} 10
confab_router_proposal_seconds_bucket{command="login",le="+Inf"} 10
confab_router_replica_lag_entries{group="0",replica="1"} 0
confab_router_replica_lag_entries{group="0",replica="2"} 4
"#;

/// 20 logins and 4 logouts in the interval, each proposal 1-2 ms.
const ROUTER_AFTER: &str = r#"
confab_router_group{field="is_leader",group="0"} 1
confab_router_group{field="is_leader",group="1"} 0
confab_router_rpc_total{method="login"} 120
confab_router_rpc_total{method="logout"} 4
confab_router_rpc_total{method="renew_lease"} 6
confab_router_proposal_seconds_bucket{command="login",le="0.001"} 10
confab_router_proposal_seconds_bucket{command="login",le="0.002"} 30
confab_router_proposal_seconds_bucket{command="login",le="+Inf"} 30
confab_router_replica_lag_entries{group="0",replica="1"} 0
confab_router_replica_lag_entries{group="0",replica="2"} 2
"#;

const NEW_ROUTER: &str = r#"
confab_router_group{field="is_leader",group="2"} 1
confab_router_group{field="is_leader",group="3"} 1
"#;

const GATEWAY_BEFORE: &str = r#"
confab_gateway_connections{transport="tcp"} 3
confab_gateway_connections{transport="ws"} 1
confab_gateway_send_seconds_count 50
confab_gateway_deliveries_total{outcome="ok",path="local"} 40
confab_gateway_deliveries_total{outcome="ok",path="remote"} 7
"#;

const GATEWAY_AFTER: &str = r#"
confab_gateway_connections{transport="tcp"} 4
confab_gateway_connections{transport="ws"} 1
confab_gateway_send_seconds_count 60
confab_gateway_group_send_seconds_count 4
confab_gateway_deliveries_total{outcome="ok",path="local"} 60
confab_gateway_deliveries_total{outcome="ok",path="remote"} 9
"#;

const PERSIST_BEFORE: &str = r#"
confab_persist_queue_waiting_messages 3
confab_persist_writer_messages_total 1000
confab_persist_writer_dead_letters_total 1
confab_persist_queue_oldest_unwritten_age_seconds 0.5
"#;

const PERSIST_AFTER: &str = r#"
confab_persist_queue_waiting_messages 0
confab_persist_writer_messages_total 1100
confab_persist_writer_dead_letters_total 1
confab_persist_queue_oldest_unwritten_age_seconds 0
"#;

fn target(role: &str, node: &str) -> Target {
    Target {
        role: role.into(),
        node: node.into(),
        zone: None,
        addr: format!("127.0.0.1:9{node}0{}", role.len()),
    }
}

fn round(at: Instant, scrapes: &[(Target, Result<&str, GetError>)]) -> Round {
    Round {
        at,
        scrapes: scrapes
            .iter()
            .map(|(t, r)| {
                let samples = r.clone().map(Samples::parse);
                (t.clone(), Scrape { at, samples })
            })
            .collect(),
    }
}

/// Router 1 answered twice, router 2 stopped answering, router 3 is new;
/// a gateway; persist; and a role `top` does not know.
fn sample() -> TopReport {
    let t0 = Instant::now();
    let before = round(
        t0,
        &[
            (target("router", "1"), Ok(ROUTER_BEFORE)),
            (target("router", "2"), Ok(ROUTER_BEFORE)),
            (target("gateway", "1"), Ok(GATEWAY_BEFORE)),
            (target("persist", "1"), Ok(PERSIST_BEFORE)),
        ],
    );
    let after = round(
        t0 + Duration::from_secs(2),
        &[
            (target("router", "1"), Ok(ROUTER_AFTER)),
            (target("router", "2"), Err(GetError::Refused)),
            (target("router", "3"), Ok(NEW_ROUTER)),
            (target("gateway", "1"), Ok(GATEWAY_AFTER)),
            (target("persist", "1"), Ok(PERSIST_AFTER)),
            (target("bench", "1"), Ok("")),
        ],
    );
    build("http://127.0.0.1:9101/sd".into(), &before, &after)
}

#[test]
fn routers_show_leaderships_rates_latency_and_lag() {
    let report = sample();
    assert_eq!(report.interval_secs, 2.0);
    let r1 = &report.routers[0];
    assert_eq!(r1.leading, Some(1));
    assert_eq!(r1.writes_per_sec, Some(12.0), "(20 logins + 4 logouts) / 2 s");
    assert_eq!(r1.reads_per_sec, None, "no read histogram yet");
    let p99 = r1.write_p99_ms.expect("p99");
    assert!((p99 - 1.99).abs() < 1e-9, "{p99}");
    assert_eq!(r1.read_p99_ms, None);
    assert_eq!(r1.raft_lag, Some(2));

    let r2 = &report.routers[1];
    assert_eq!(r2.process.error.as_deref(), Some("connection refused"));
    assert_eq!((r2.leading, r2.writes_per_sec, r2.raft_lag), (None, None, None));

    let r3 = &report.routers[2];
    assert_eq!(r3.leading, Some(2), "gauges from one scrape");
    assert_eq!(
        (r3.writes_per_sec, r3.write_p99_ms),
        (None, None),
        "rates need two"
    );
}

#[test]
fn gateways_and_persist_show_their_figures() {
    let report = sample();
    let g = &report.gateways[0];
    assert_eq!(g.connections, Some(5));
    assert_eq!(g.messages_per_sec, Some(7.0), "(10 sends + 4 group sends) / 2 s");
    assert_eq!(g.deliveries_per_sec, Some(10.0), "local pushes only");
    let p = &report.persist[0];
    assert_eq!(p.queue_depth, Some(0));
    assert_eq!(p.writes_per_sec, Some(50.0));
    assert_eq!((p.dead_letters, p.dead_letters_per_sec), (Some(1), Some(0.0)));
    assert_eq!(p.oldest_unwritten_secs, Some(0.0));
}

#[test]
fn renders_one_table_per_role() {
    let text = render_text(&sample());
    assert_eq!(
        text,
        "http://127.0.0.1:9101/sd: routers 3, gateways 1, persist 1; rates over 2.0s\n\
         \n\
         ROUTERS\n\
         NODE  ADDR            LEADS  WRITES/S  READS/S  WRITE_P99  READ_P99  RAFT_LAG  ERROR\n\
         1     127.0.0.1:9106  1      12.0      -        1.99ms     -         2\n\
         2     127.0.0.1:9206  -      -         -        -          -         -         connection refused\n\
         3     127.0.0.1:9306  2      -         -        -          -         -\n\
         \n\
         GATEWAYS\n\
         NODE  ADDR            CONNS  MSGS/S  DELIVERIES/S  ERROR\n\
         1     127.0.0.1:9107  5      7.0     10.0\n\
         \n\
         PERSIST\n\
         NODE  ADDR            QUEUE  WRITES/S  DEAD_LETTERS  DEAD/S  OLDEST  ERROR\n\
         1     127.0.0.1:9107  0      50.0      1             0.0     0.0s\n"
    );
}

#[test]
fn a_zone_column_when_a_process_has_one_and_none_listed_when_empty() {
    let mut t = target("gateway", "4");
    t.zone = Some("eu-1".into());
    let now = Instant::now();
    let report = build(
        "http://h:1/sd".into(),
        &round(now, &[]),
        &round(now, &[(t, Err(GetError::TimedOut))]),
    );
    let text = render_text(&report);
    assert!(
        text.contains(
            "NODE  ADDR            ZONE  CONNS  MSGS/S  DELIVERIES/S  ERROR\n\
                       4     127.0.0.1:9407  eu-1  -      -       -             timed out\n"
        ),
        "{text}"
    );
    assert!(text.contains("ROUTERS\nnone listed\n"), "{text}");
}

#[test]
fn json_names_every_field() {
    let json = serde_json::to_value(sample()).expect("json");
    let r1 = &json["routers"][0];
    assert_eq!(r1["node"], "1");
    assert_eq!(r1["leading"], 1);
    assert_eq!(r1["writes_per_sec"], 12.0);
    assert!(r1["read_p99_ms"].is_null());
    assert!(r1["error"].is_null());
    assert_eq!(json["routers"][1]["error"], "connection refused");
    assert_eq!(json["gateways"][0]["connections"], 5);
    assert_eq!(json["persist"][0]["queue_depth"], 0);
    assert_eq!(json["persist"][0]["dead_letters"], 1);
    assert_eq!(json["sd"], "http://127.0.0.1:9101/sd");
}
