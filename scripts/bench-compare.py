#!/usr/bin/env python3
"""This build's closed-loop 1:1 chat against an older build's, from the
alternating rounds of scripts/bench-compare.sh: delivered messages/s and
p99 of every run, the best of each series and their ratio. Writes
compare.json; exits 1 when a figure is missing, a run lost or duplicated a
message, or this build's best is under MIN_RATIO of the older one's."""

import json
import pathlib
import sys


def chat(run):
    files = sorted(run.glob("gateway-chat-*.json"))
    if not files:
        sys.exit(f"bench-compare: no gateway-chat-RATE.json in {run}")
    try:
        s = json.loads(files[0].read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"bench-compare: cannot read {files[0]}: {e}")
    r = s.get("results", {})
    return {
        "delivered_per_s": s["ops_per_s"],
        "p99_ms": s["p99_us"] / 1000,
        "lost": r.get("lost"),
        "duplicated": r.get("duplicated"),
    }


def main():
    out_dir, rounds, min_ratio = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    series = {
        "before": [chat(out_dir / f"before-{i}") for i in range(1, rounds + 1)],
        "after": [chat(out_dir / f"after-{i}") for i in range(1, rounds + 1)],
    }
    print(f"{'round':>5}  {'before msg/s':>12}  {'p99 ms':>7}  {'after msg/s':>12}  {'p99 ms':>7}")
    for i in range(rounds):
        b, a = series["before"][i], series["after"][i]
        print(f"{i + 1:>5}  {b['delivered_per_s']:>12,.0f}  {b['p99_ms']:>7.1f}  "
              f"{a['delivered_per_s']:>12,.0f}  {a['p99_ms']:>7.1f}")
    best = {k: max(r["delivered_per_s"] for r in v) for k, v in series.items()}
    ratio = best["after"] / best["before"]
    clean = all(r["lost"] == 0 and r["duplicated"] == 0 for v in series.values() for r in v)
    ok = ratio >= min_ratio and clean
    print(f"best: before {best['before']:,.0f} msg/s, after {best['after']:,.0f} msg/s: "
          f"{ratio:.1%} (target >= {min_ratio:.0%}) {'ok' if ok else 'MISSED'}")
    if not clean:
        print("a run lost or duplicated messages")
    (out_dir / "compare.json").write_text(json.dumps(
        {"series": series, "best": best, "ratio": ratio, "target": min_ratio, "ok": ok},
        indent=2) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
