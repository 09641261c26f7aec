#!/usr/bin/env python3
"""The cost of TLS from two runs of scripts/bench.sh (plain, then TLS):
router writes/s, the chat's highest offered rate with p99 under 50 ms and
nothing lost (and what it delivered there), and the gateways' memory per
idle connection. Prints a table with the ratios and the issue's targets,
writes cost.json next to the TLS run; exits 1 when a figure is missing."""

import json
import pathlib
import sys

P99_TARGET_US = 50_000


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"tls-cost: cannot read {path}: {e}")


def chat_knee(run):
    """(offered, delivered/s, p99 ms) at the highest rate under the target."""
    best = None
    steps = []
    for f in sorted(run.glob("gateway-chat-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        s = load(f)
        offered = int(f.stem.rsplit("-", 1)[1])
        r = s.get("results", {})
        ok = s["p99_us"] < P99_TARGET_US and r.get("lost", 1) == 0 and not s.get("errors")
        steps.append((offered, s["ops_per_s"], s["p99_us"] / 1000, ok))
        if ok:
            best = (offered, s["ops_per_s"], s["p99_us"] / 1000)
    if not steps:
        sys.exit(f"tls-cost: no gateway-chat-RATE.json in {run}")
    return best, steps


def main():
    plain, tls = (pathlib.Path(a) for a in sys.argv[1:3])
    rows = []
    out = {}

    w = [load(d / "router-writes.json")["ops_per_s"] for d in (plain, tls)]
    rows.append(("router writes/s", f"{w[0]:,.0f}", f"{w[1]:,.0f}", w[1] / w[0], "TLS >= 85% of plain", w[1] >= 0.85 * w[0]))
    out["router_writes_per_s"] = {"plain": w[0], "tls": w[1], "ratio": w[1] / w[0]}

    knees = []
    for d in (plain, tls):
        best, steps = chat_knee(d)
        for offered, got, p99, ok in steps:
            print(f"{d.name:>6} chat offered {offered:>6}/s: {got:>9,.0f} msg/s, p99 {p99:6.1f} ms{'' if ok else '  (over the target or lost)'}")
        knees.append(best)
    if None in knees:
        sys.exit("tls-cost: a run has no chat rate with p99 under 50 ms and nothing lost")
    k = [b[1] for b in knees]
    rows.append(
        (
            "chat msg/s at p99 < 50 ms",
            f"{k[0]:,.0f} (offered {knees[0][0]}, p99 {knees[0][2]:.1f} ms)",
            f"{k[1]:,.0f} (offered {knees[1][0]}, p99 {knees[1][2]:.1f} ms)",
            k[1] / k[0],
            "TLS >= 85% of plain",
            k[1] >= 0.85 * k[0],
        )
    )
    out["chat_msgs_per_s_p99_under_50ms"] = {"plain": knees[0], "tls": knees[1], "ratio": k[1] / k[0]}

    for name, label in (("gateway-connections-one.json", "idle connection, 1 gateway"), ("gateway-connections.json", "idle connection, 3 gateways")):
        c = [load(d / name) for d in (plain, tls)]
        b = [x["results"]["bytes_per_conn"] for x in c]
        alive = [x["results"]["alive"] for x in c]
        target = "TLS <= 10 KiB at 50,000" if name == "gateway-connections.json" else ""
        met = b[1] <= 10 * 1024 if target else None
        rows.append((f"{label} (bytes)", f"{b[0]:,.0f} ({alive[0]:,} open)", f"{b[1]:,.0f} ({alive[1]:,} open)", b[1] / b[0], target, met))
        out[name.removesuffix(".json")] = {"plain": b[0], "tls": b[1], "alive": alive}

    print()
    print(f"| {'figure':<30} | {'plain':<36} | {'TLS':<36} | TLS/plain | target |")
    print(f"|{'-' * 32}|{'-' * 38}|{'-' * 38}|-----------|--------|")
    for name, a, b, ratio, target, met in rows:
        verdict = "" if met is None else (" met" if met else " MISSED")
        print(f"| {name:<30} | {a:<36} | {b:<36} | {ratio:8.1%} | {target}{verdict} |")
    (tls / "cost.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
