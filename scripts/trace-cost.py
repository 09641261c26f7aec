#!/usr/bin/env python3
"""The cost of traces (1 % sampling, exported over OTLP) and JSON logs,
from the alternating rounds of scripts/bench-trace.sh: the closed-loop 1:1
chat's delivered messages/s in each run, the best of each series, and their
ratio against the target (traced >= 95 % of plain). Also checks that the
traced runs did export spans. Writes cost.json; exits 1 when a figure is
missing or the target is missed."""

import json
import pathlib
import sys

TARGET = 0.95


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"trace-cost: cannot read {path}: {e}")


def chat(run):
    files = sorted(run.glob("gateway-chat-*.json"))
    if not files:
        sys.exit(f"trace-cost: no gateway-chat-RATE.json in {run}")
    s = load(files[0])
    r = s.get("results", {})
    return {
        "delivered_per_s": s["ops_per_s"],
        "p99_ms": s["p99_us"] / 1000,
        "lost": r.get("lost"),
        "duplicated": r.get("duplicated"),
    }


def main():
    out_dir, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    series = {"plain": [], "traced": []}
    spans = []
    for i in range(1, rounds + 1):
        series["plain"].append(chat(out_dir / f"plain-{i}"))
        series["traced"].append(chat(out_dir / f"traced-{i}"))
        sink = load(out_dir / f"traced-{i}" / "otlp-sink.json")
        spans.append(sink["spans"])
    print(f"{'round':>5}  {'plain msg/s':>12}  {'p99 ms':>7}  {'traced msg/s':>12}  {'p99 ms':>7}  {'spans':>7}")
    for i in range(rounds):
        p, t = series["plain"][i], series["traced"][i]
        print(f"{i + 1:>5}  {p['delivered_per_s']:>12,.0f}  {p['p99_ms']:>7.1f}  "
              f"{t['delivered_per_s']:>12,.0f}  {t['p99_ms']:>7.1f}  {spans[i]:>7,}")
    best = {k: max(r["delivered_per_s"] for r in v) for k, v in series.items()}
    ratio = best["traced"] / best["plain"]
    ok = ratio >= TARGET and all(s > 0 for s in spans)
    print(f"best: plain {best['plain']:,.0f} msg/s, traced {best['traced']:,.0f} msg/s: "
          f"{ratio:.1%} (target >= {TARGET:.0%}) {'ok' if ok else 'MISSED'}")
    if not all(s > 0 for s in spans):
        print("a traced run exported no span: tracing was not on")
    (out_dir / "cost.json").write_text(json.dumps(
        {"series": series, "spans": spans, "best": best, "ratio": ratio, "target": TARGET, "ok": ok},
        indent=2) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
