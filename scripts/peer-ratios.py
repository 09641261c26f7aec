#!/usr/bin/env python3
"""The router against its peers, all measured in one run of scripts/bench.sh
(router part): replicated writes vs etcd (3 members, fsync on), populated
lookups vs Redis MGET of existing keys, persist (PostgreSQL + RabbitMQ,
enqueue -> committed) vs PostgreSQL's own COPY of the same rows into the
same database. Reads the run's JSON summaries in
OUT, prints one table and writes OUT/peers.json. A figure that is missing
prints as such; exits 1 only when the run's own router figures are missing.

    scripts/peer-ratios.py OUT
"""

import json
import pathlib
import re
import sys


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main():
    out = pathlib.Path(sys.argv[1])
    writes = load(out / "router-writes.json")
    lookups = load(out / "router-lookups.json")
    if writes is None or lookups is None:
        sys.exit("peer-ratios: router-writes.json or router-lookups.json missing")
    etcd = load(out / "etcd-writes.json")
    redis_keys = None
    try:
        m = re.search(r"([0-9.]+) requests per second", (out / "redis-mget.txt").read_text())
        if m:
            redis_keys = float(m.group(1)) * 100  # MGET of 100 keys
    except OSError:
        pass
    res = lookups.get("results", {})
    batch = lookups.get("settings", {}).get("batch") or 100
    uids = lookups["ops_per_s"] * batch
    hit = res.get("hit_ratio")
    rows = [
        {
            "what": "replicated writes (login + logout) vs etcd put",
            "confab": writes["ops_per_s"],
            "peer": etcd["writes_per_s"] if etcd else None,
            "unit": "writes/s",
            "concurrency": f"{writes.get('concurrency', '?')} vs {etcd['clients'] if etcd else '?'}",
        },
        {
            "what": f"populated lookups (hit ratio {hit:.3f})" if hit is not None else "lookups",
            "confab": uids,
            "peer": redis_keys,
            "unit": "uids/s vs keys/s",
            "concurrency": "",
        },
    ]
    persist = load(out / "persist-write.json")
    pg = next((r for r in (persist or {}).get("runs", []) if r.get("copy_rows_per_s")), None)
    rows.append(
        {
            "what": "persist enqueue -> committed vs PostgreSQL COPY",
            "confab": pg["end_to_end_per_s"] if pg else None,
            "peer": pg["copy_rows_per_s"] if pg else None,
            "unit": "messages/s vs rows/s",
            "concurrency": pg["path"] if pg else "",
        }
    )
    print(f"{'what':<52} {'Confab':>12} {'peer':>12} {'ratio':>8}")
    for r in rows:
        r["ratio"] = r["confab"] / r["peer"] if r["peer"] and r["confab"] else None
        confab = f"{r['confab']:>12,.0f}" if r["confab"] else f"{'-':>12}"
        peer = f"{r['peer']:>12,.0f}" if r["peer"] else f"{'-':>12}"
        ratio = f"{r['ratio']:>7.2f}x" if r["ratio"] else f"{'-':>8}"
        print(f"{r['what']:<52} {confab} {peer} {ratio}")
    (out / "peers.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
