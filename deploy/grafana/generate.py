#!/usr/bin/env python3
"""Writes Confab's Grafana dashboards to deploy/grafana/dashboards/*.json.

The JSON files are committed; edit this file and run it again
(`python3 deploy/grafana/generate.py`) rather than editing them by hand.
`--check` only compares: it exits 1 when a committed file differs from what
this script writes (scripts/check-observability.sh runs it so).

Every expression uses metrics the processes export (or recording rules of
deploy/prometheus/rules/), a `$datasource` variable for the Prometheus data
source and an `$instance` variable for the scraped processes.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def sel(extra=""):
    """The label selector every panel applies: the chosen instances."""
    inner = 'instance=~"$instance"'
    if extra:
        inner += ", " + extra
    return "{" + inner + "}"


def eq(label, value):
    """A label matcher, label="value"."""
    return f'{label}="{value}"'


def rate(metric, extra="", by=None):
    r = f"rate({metric}{sel(extra)}[{RATE}])"
    return f"sum by ({by}) ({r})" if by else f"sum({r})"


def or_zero(expr):
    """An error rate whose series exist only once an error happened (labels
    such as method and code are open-ended): 0 instead of "No data"."""
    return f"{expr} or on() vector(0)"


def quantile(q, metric, by=None, extra=""):
    """histogram_quantile over the rate of a histogram's buckets."""
    group = "le" if not by else f"{by}, le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{sel(extra)}[{RATE}])))"


def mean(metric, by=None, extra=""):
    """A histogram's mean over the interval (sum / count)."""
    return f"{rate(metric + '_sum', extra, by)} / {rate(metric + '_count', extra, by)}"


class Dashboard:
    def __init__(self, uid, title, description, instance_query):
        self.uid = uid
        self.title = title
        self.description = description
        self.instance_query = instance_query
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        if self.x:
            self.y += self.row_h
        self.x, self.row_h = 0, 0
        self.panels.append(
            {
                "id": self._id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    @staticmethod
    def _targets(queries):
        out = []
        for i, (expr, legend) in enumerate(queries):
            out.append(
                {
                    "datasource": DS,
                    "expr": expr,
                    "legendFormat": legend,
                    "range": True,
                    "refId": chr(ord("A") + i),
                }
            )
        return out

    def timeseries(self, title, queries, unit="short", description="", w=12, h=8, stack=False, min0=True):
        defaults = {
            "unit": unit,
            "custom": {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            },
        }
        if min0:
            defaults["min"] = 0
        self.panels.append(
            {
                "id": self._id(),
                "type": "timeseries",
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": {
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                },
                "targets": self._targets(queries),
            }
        )

    def stat(self, title, queries, unit="short", description="", red=None, w=4, h=4):
        steps = [{"color": "green", "value": None}]
        if red is not None:
            steps.append({"color": "red", "value": red})
        self.panels.append(
            {
                "id": self._id(),
                "type": "stat",
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "thresholds": {"mode": "absolute", "steps": steps},
                        "color": {"mode": "thresholds"},
                    },
                    "overrides": [],
                },
                "options": {
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background" if red is not None else "value",
                    "graphMode": "area",
                    "justifyMode": "auto",
                    "orientation": "auto",
                    "textMode": "auto",
                },
                "targets": self._targets(queries),
            }
        )

    def to_json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["confab"],
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "",
            "links": [
                {
                    "title": "Confab",
                    "type": "dashboards",
                    "tags": ["confab"],
                    "asDropdown": True,
                    "includeVars": True,
                    "keepTime": True,
                }
            ],
            "annotations": {"list": []},
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Prometheus",
                        "type": "datasource",
                        "query": "prometheus",
                        "current": {},
                        "hide": 0,
                        "refresh": 1,
                    },
                    {
                        "name": "instance",
                        "label": "Instance",
                        "type": "query",
                        "datasource": DS,
                        "query": self.instance_query,
                        "definition": self.instance_query,
                        "includeAll": True,
                        "multi": True,
                        "allValue": ".*",
                        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                        "refresh": 2,
                        "sort": 1,
                        "hide": 0,
                    },
                ]
            },
            "panels": self.panels,
        }


def overview():
    d = Dashboard(
        "confab-overview",
        "Confab / Cluster overview",
        "Health and traffic of the whole cluster: targets, Raft leaders, connections, sends, deliveries, persistence.",
        'label_values(up{job=~"confab-.+"}, instance)',
    )
    d.row("Health")
    d.stat("Targets up", [('sum by (job) (up{job=~"confab-.+"})', "{{job}}")],
           description="Scraped processes answering, by kind.")
    d.stat("Groups without a leader", [("count(group:confab_router_group_leaders:sum == 0) or vector(0)", "")],
           red=1, description="Raft groups (shards and the meta group) no replica leads.")
    d.stat("Gateway leases expired (1h)",
           [("sum(increase(confab_router_gateway_leases_expired_total[1h])) or vector(0)", "")],
           red=1, description="Gateways that died or lost the routers without deregistering.")
    d.stat("Dead letters (24h)",
           [("sum(increase(confab_persist_writer_dead_letters_total[24h])) or vector(0)", "")],
           red=1, description="Messages the writers moved to the dead-letter queue.")
    d.stat("Client connections", [(f"sum(confab_gateway_connections{sel()})", "")])
    d.stat("Queue: unwritten messages", [(f"sum(confab_persist_queue_waiting_messages{sel()})", "")],
           description="Embedded queue: enqueued, not yet written.")
    d.row("Traffic")
    d.timeseries("Messages / s", [
        (rate("confab_gateway_send_seconds_count"), "1:1 sends acked"),
        (rate("confab_gateway_group_send_seconds_count"), "group sends acked"),
        (rate("confab_persist_writer_messages_total"), "written by persist"),
        (rate("confab_persist_enqueued_total"), "enqueued via persist gRPC"),
    ], unit="ops")
    d.timeseries("Deliveries / s by path and outcome",
                 [(rate("confab_gateway_deliveries_total", by="path, outcome"), "{{path}} {{outcome}}")],
                 unit="ops")
    d.timeseries("Send latency", [
        (quantile(0.5, "confab_gateway_send_seconds"), "1:1 p50"),
        (quantile(0.99, "confab_gateway_send_seconds"), "1:1 p99"),
        (quantile(0.99, "confab_gateway_group_send_seconds"), "group p99"),
    ], unit="s", description="Request to ack at the gateways. Targets: 1:1 p99 < 50 ms, group p99 < 200 ms.")
    d.timeseries("Client frames in / s by kind",
                 [(rate("confab_gateway_frames_in_total", by="kind"), "{{kind}}")], unit="ops")
    d.timeseries("Router RPCs / s by method",
                 [(rate("confab_router_rpc_total", by="method"), "{{method}}")], unit="ops")
    d.timeseries("Errors / s", [
        (rate("confab_gateway_errors_total", by="code"), "gateway {{code}}"),
        (or_zero(rate("confab_router_rpc_errors_total", by="kind")), "router {{kind}}"),
        (or_zero(rate("confab_persist_grpc_requests_total", 'code!="Ok"', by="code")), "persist {{code}}"),
    ], unit="ops")
    d.row("State")
    d.timeseries("Connections by transport",
                 [(f"sum by (transport) (confab_gateway_connections{sel()})", "{{transport}}")])
    d.timeseries("Sessions held by the routers",
                 [(f'sum(max by (shard) (confab_router_shard_sessions{sel()}))', "sessions")],
                 description="Per shard, the highest count among its replicas; summed.")
    return d


def routers():
    d = Dashboard(
        "confab-routers",
        "Confab / Routers and Raft",
        "The online-state table: RPCs, redirects, Raft groups (leaders, terms, indexes, lag), proposals, reads, WAL, snapshots, moves.",
        'label_values(up{job="confab-router"}, instance)',
    )
    d.row("Requests")
    d.timeseries("RPCs / s by method", [(rate("confab_router_rpc_total", by="method"), "{{method}}")], unit="ops")
    d.timeseries("RPC errors / s by method and kind",
                 [(or_zero(rate("confab_router_rpc_errors_total", by="method, kind")), "{{method}} {{kind}}")], unit="ops")
    d.timeseries("Redirects / s by kind", [(rate("confab_router_redirects_total", by="kind"), "{{kind}}")],
                 unit="ops", description="Requests answered with a routing redirect (not_leader, epoch_not_match, tombstone, shard_not_found).")
    d.timeseries("Proposals / s by command",
                 [(rate("confab_router_proposal_seconds_count", by="command"), "{{command}}")], unit="ops")
    d.row("Latency")
    d.timeseries("Proposal latency (propose -> applied)", [
        (quantile(0.5, "confab_router_proposal_seconds", by="command"), "p50 {{command}}"),
        (quantile(0.99, "confab_router_proposal_seconds", by="command"), "p99 {{command}}"),
    ], unit="s")
    d.timeseries("Linearizable read latency", [
        (quantile(0.5, "confab_router_read_seconds"), "p50"),
        (quantile(0.99, "confab_router_read_seconds"), "p99"),
    ], unit="s", description="Per shard part: leadership check, wait for apply, read.")
    d.timeseries("WAL fsync latency", [
        (quantile(0.5, "confab_router_wal_sync_seconds", by="instance"), "p50 {{instance}}"),
        (quantile(0.99, "confab_router_wal_sync_seconds", by="instance"), "p99 {{instance}}"),
    ], unit="s")
    d.timeseries("Batching (mean per call)", [
        (mean("confab_router_wal_sync_batch"), "log writes per WAL fsync"),
        (mean("confab_router_write_batch"), "session writes per log entry"),
        (mean("confab_router_read_batch"), "reads per leadership check"),
    ])
    d.row("Raft groups")
    d.timeseries("Leaders held by each router",
                 [(f'sum by (instance) (confab_router_group{sel(eq("field", "is_leader"))})',
                   "{{instance}}")],
                 description="Groups each router leads: an even spread is the rebalancer's aim.")
    d.timeseries("Replicas claiming leadership, per group",
                 [("group:confab_router_group_leaders:sum", "group {{group}}")],
                 description="1 is right; 0 is a group without a leader (alert ConfabRaftGroupWithoutLeader).")
    d.timeseries("Term by group",
                 [(f'max by (group) (confab_router_group{sel(eq("field", "term"))})',
                   "group {{group}}")],
                 description="A term that keeps rising is a group electing over and over.", min0=False)
    d.timeseries("Apply lag (commit - applied) by instance and group", [(
        f'confab_router_group{sel(eq("field", "commit_index"))} - ignoring(field) '
        f'confab_router_group{sel(eq("field", "applied_index"))}',
        "{{instance}} group {{group}}",
    )])
    d.timeseries("Replica lag (entries behind the leader)",
                 [(f"max by (group, replica) (confab_router_replica_lag_entries{sel()})",
                   "group {{group}} node {{replica}}")])
    d.timeseries("Log entries appended / s",
                 [(rate("confab_router_log_entries_appended_total", by="instance"), "{{instance}}")], unit="ops")
    d.timeseries("Raft RPCs / s to peers by kind and outcome",
                 [(rate("confab_router_raft_rpc_total", by="kind, outcome"), "{{kind}} {{outcome}}")], unit="ops")
    d.timeseries("Sessions per shard",
                 [(f"max by (shard) (confab_router_shard_sessions{sel()})", "shard {{shard}}")])
    d.row("Gateways, snapshots, moves")
    d.timeseries("Gateway leases expired", [(
        f"sum(increase(confab_router_gateway_leases_expired_total{sel()}[{RATE}]))", "expired")])
    d.timeseries("Misaddressed Raft RPCs / s",
                 [(rate("confab_router_raft_misaddressed_total", by="instance"), "{{instance}}")], unit="ops",
                 description="Calls for another node id or from another cluster: a wrong or stale peer address.")
    d.timeseries("Snapshots", [
        (rate("confab_router_snapshots_built_total"), "built / s"),
        (rate("confab_router_snapshots_installed_total"), "installed / s"),
        (rate("confab_router_snapshots_sent_total", by="outcome"), "sent {{outcome}} / s"),
        (rate("confab_router_snapshots_received_total", by="outcome"), "received {{outcome}} / s"),
    ], unit="ops")
    d.timeseries("Snapshot transfer", [
        (rate("confab_router_snapshot_sent_bytes_total"), "sent"),
        (rate("confab_router_snapshot_received_bytes_total"), "received"),
    ], unit="Bps")
    d.timeseries("Snapshot send / install time (p99)", [
        (quantile(0.99, "confab_router_snapshot_send_seconds"), "send"),
        (quantile(0.99, "confab_router_snapshot_receive_seconds"), "install"),
    ], unit="s")
    d.timeseries("Replica moves", [
        (f"sum(confab_router_moves_in_progress{sel()})", "in progress"),
        (rate("confab_router_rebalance_moves_total", by="kind"), "{{kind}} / s"),
        (quantile(0.99, "confab_router_learner_catch_up_seconds"), "learner catch-up p99 (s)"),
    ])
    d.timeseries("Internal calls refused / TLS handshakes failed", [
        (rate("confab_rpc_refused_total", by="service, reason"), "refused {{service}} {{reason}}"),
        (rate("confab_tls_handshake_failures_total", by="listener, reason"), "handshake {{listener}} {{reason}}"),
    ], unit="ops")
    return d


def gateways():
    d = Dashboard(
        "confab-gateways",
        "Confab / Gateways",
        "Client connections, frames, sends and their phases, deliveries, the calls the send path batches, limits.",
        'label_values(up{job="confab-gateway"}, instance)',
    )
    d.row("Connections")
    d.timeseries("Connections by instance and transport",
                 [(f"sum by (instance, transport) (confab_gateway_connections{sel()})", "{{instance}} {{transport}}"),
                  (f"sum by (instance) (confab_gateway_http_connections{sel()})", "{{instance}} http (not upgraded)")],
                 stack=True)
    d.timeseries("Connections refused and closed / s", [
        (rate("confab_gateway_connections_refused_total", by="reason"), "refused {{reason}}"),
        (rate("confab_gateway_http_closed_total", by="reason"), "http closed {{reason}}"),
        (rate("confab_gateway_slow_consumers_total"), "slow consumer"),
        (rate("confab_gateway_login_timeouts_total"), "login timeout"),
        (rate("confab_gateway_kicks_total"), "kicked by a newer login"),
        (rate("confab_gateway_ws_too_large_total"), "websocket frame too large"),
    ], unit="ops")
    d.timeseries("Frames in / s by kind", [(rate("confab_gateway_frames_in_total", by="kind"), "{{kind}}")], unit="ops")
    d.timeseries("Frames out / s by kind", [(rate("confab_gateway_frames_out_total", by="kind"), "{{kind}}")], unit="ops")
    d.timeseries("Error frames / s by code", [(rate("confab_gateway_errors_total", by="code"), "{{code}}")], unit="ops")
    d.timeseries("Rate limited / s by bucket",
                 [(rate("confab_gateway_rate_limited_total", by="bucket"), "{{bucket}}")], unit="ops")
    d.row("Sends")
    d.timeseries("Send latency (request -> ack)", [
        (quantile(0.5, "confab_gateway_send_seconds"), "1:1 p50"),
        (quantile(0.99, "confab_gateway_send_seconds"), "1:1 p99"),
        (quantile(0.5, "confab_gateway_group_send_seconds"), "group p50"),
        (quantile(0.99, "confab_gateway_group_send_seconds"), "group p99"),
    ], unit="s", description="Targets: 1:1 p99 < 50 ms, group p99 < 200 ms.")
    d.timeseries("1:1 send phases (p99)",
                 [(quantile(0.99, "confab_gateway_send_phase_seconds", by="phase"), "{{phase}}")], unit="s",
                 description="confirm: the queue's confirm; lookup: the recipients' sessions; order: waiting for the connection's previous send; deliver: other gateways' calls.")
    d.timeseries("Deliveries / s by path and outcome",
                 [(rate("confab_gateway_deliveries_total", by="path, outcome"), "{{path}} {{outcome}}"),
                  (rate("confab_gateway_group_fanout_sessions_total"), "group fan-out sessions")], unit="ops")
    d.timeseries("Send queue", [
        (f"sum by (instance) (confab_gateway_send_queue_bytes{sel()})", "{{instance}} bytes queued"),
    ], unit="bytes")
    d.timeseries("Send queue waits / s",
                 [(rate("confab_gateway_send_queue_waits_total", by="instance"), "{{instance}}")], unit="ops",
                 description="Times a connection stopped reading requests until its send queue drained.")
    d.row("Batched calls")
    d.timeseries("Call latency (p99)", [
        (quantile(0.99, "confab_gateway_enqueue_call_seconds"), "enqueue (queue confirm)"),
        (quantile(0.99, "confab_gateway_lookup_call_seconds"), "session lookup (routers)"),
        (quantile(0.99, "confab_gateway_deliver_call_seconds"), "Deliver (other gateways)"),
    ], unit="s")
    d.timeseries("Batch size (mean per call)", [
        (mean("confab_gateway_enqueue_batch"), "messages per enqueue"),
        (mean("confab_gateway_lookup_batch"), "sends per lookup"),
        (mean("confab_gateway_deliver_batch"), "messages per Deliver"),
    ])
    d.row("Social and reads")
    d.timeseries("Social cache hit ratio by kind", [(
        f'{rate("confab_gateway_social_cache_total", eq("outcome", "hit"), by="kind")} / '
        f'{rate("confab_gateway_social_cache_total", by="kind")}',
        "{{kind}}",
    )], unit="percentunit")
    d.timeseries("Social pushes and presence / s", [
        (rate("confab_gateway_social_pushes_total", by="outcome"), "pushes {{outcome}}"),
        (rate("confab_gateway_presence_events_total", by="cause"), "presence {{cause}}"),
    ], unit="ops")
    d.timeseries("Read waits / s by outcome",
                 [(rate("confab_gateway_read_waits_total", by="outcome"), "{{outcome}}")], unit="ops")
    d.timeseries("List pages / s", [(rate("confab_gateway_list_pages_total", by="list, page"), "{{list}} {{page}}")],
                 unit="ops")
    d.row("TLS")
    d.timeseries("TLS handshakes failed / s",
                 [(rate("confab_tls_handshake_failures_total", by="listener, reason"), "{{listener}} {{reason}}")],
                 unit="ops")
    d.timeseries("Certificate reloads", [
        (f"sum by (result) (increase(confab_gateway_client_tls_reloads_total{sel()}[{RATE}]))", "client ports {{result}}"),
        (f"sum by (listener, outcome) (increase(confab_tls_reloads_total{sel()}[{RATE}]))", "{{listener}} {{outcome}}"),
    ])
    return d


def persist():
    d = Dashboard(
        "confab-persist",
        "Confab / Persist and queue",
        "Data access (gRPC, SQL), the message writers, the embedded queue, dead letters.",
        'label_values(up{job="confab-persist"}, instance)',
    )
    d.row("Queue and writers")
    d.stat("Unwritten messages", [(f"sum(confab_persist_queue_waiting_messages{sel()})", "")],
           description="Embedded queue: enqueued, not yet written.", w=6)
    d.stat("Dead letters (24h)",
           [(f"sum(increase(confab_persist_writer_dead_letters_total{sel()}[24h])) or vector(0)", "")],
           red=1, w=6)
    d.stat("Open Subscribe streams", [(f"sum(confab_persist_subscribers{sel()})", "")], w=6)
    d.stat("Serving", [(f"min(confab_persist_up{sel()})", "")], w=6,
           description="1 while every chosen instance serves; 0 during shutdown.")
    d.timeseries("Queue depth", [
        (f"sum by (instance) (confab_persist_queue_waiting_messages{sel()})", "{{instance}} unwritten"),
        (f"sum by (instance) (confab_persist_queue_log_segments{sel()})", "{{instance}} log segments"),
    ])
    d.timeseries("Writer throughput / s", [
        (rate("confab_persist_enqueued_total"), "enqueued (gRPC)"),
        (rate("confab_persist_writer_messages_total"), "written"),
        (rate("confab_persist_writer_batches_total"), "batches"),
        (rate("confab_persist_writer_duplicates_total"), "duplicates (redelivered)"),
    ], unit="ops")
    d.timeseries("Writer trouble / s", [
        (rate("confab_persist_writer_dead_letters_total"), "dead letters"),
        (rate("confab_persist_writer_rejected_total"), "rejected (not a participant)"),
        (rate("confab_persist_writer_retries_total"), "retried batches"),
    ], unit="ops")
    d.timeseries("Embedded queue memory (RocksDB)", [
        (f"sum by (instance, part) (confab_persist_queue_memory_bytes{sel()})", "{{instance}} {{part}}"),
    ], unit="bytes", description="Memtables (8 MiB, two per column family at most), table readers "
                                  "(with their index and filter blocks), the 1 MiB block cache.")
    d.timeseries("Batch and commit latency", [
        (quantile(0.5, "confab_persist_writer_batch_seconds", by="backend"), "batch p50 {{backend}}"),
        (quantile(0.99, "confab_persist_writer_batch_seconds", by="backend"), "batch p99 {{backend}}"),
        (quantile(0.99, "confab_persist_queue_log_commit_seconds"), "queue log commit p99"),
    ], unit="s")
    d.row("Data access")
    d.timeseries("gRPC requests / s by method",
                 [(rate("confab_persist_grpc_requests_total", by="method"), "{{method}}")], unit="ops")
    d.timeseries("gRPC failures / s by method and code", [(
        or_zero(rate("confab_persist_grpc_requests_total", 'code!="Ok"', by="method, code")), "{{method}} {{code}}")],
        unit="ops")
    d.timeseries("Query latency p99 by operation",
                 [(quantile(0.99, "confab_persist_db_query_seconds", by="op"), "{{op}}")], unit="s")
    d.timeseries("Query errors / s by operation",
                 [(or_zero(rate("confab_persist_db_query_errors_total", by="op")), "{{op}}")], unit="ops")
    d.timeseries("Connection pool", [
        (f"sum by (instance) (confab_persist_db_pool_connections{sel()})", "{{instance}} open"),
        (f"sum by (instance) (confab_persist_db_pool_idle{sel()})", "{{instance}} idle"),
        (f"sum by (instance) (confab_persist_db_pool_max{sel()})", "{{instance}} max"),
    ])
    d.timeseries("Read waits / s by outcome",
                 [(rate("confab_persist_read_waits_total", by="outcome"), "{{outcome}}")], unit="ops")
    d.row("Accounts and limits")
    d.timeseries("Password hashes", [
        (f"sum by (state) (confab_persist_password_hashes{sel()})", "{{state}}"),
        (rate("confab_persist_password_hashes_refused_total"), "refused / s"),
    ])
    d.timeseries("Tokens revoked / s by reason",
                 [(rate("confab_persist_token_revocations_total", by="reason"), "{{reason}}")], unit="ops")
    d.timeseries("Inserts refused by a cap / s",
                 [(rate("confab_persist_limit_refusals_total", by="limit"), "{{limit}}")], unit="ops")
    d.timeseries("TLS to the database and broker",
                 [(f"max by (instance, link) (confab_persist_tls_mode{sel()})", "{{instance}} {{link}}")],
                 description="0 plain, 1 encrypted without verifying the server, 2 verified.")
    return d


def main():
    check = "--check" in sys.argv[1:]
    OUT.mkdir(exist_ok=True)
    stale = []
    for build in (overview, routers, gateways, persist):
        d = build()
        path = OUT / f"{d.uid}.json"
        text = json.dumps(d.to_json(), indent=2) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("dashboards differ from generate.py's output: " + ", ".join(stale), file=sys.stderr)
        print("run: python3 deploy/grafana/generate.py", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
