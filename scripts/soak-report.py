#!/usr/bin/env python3
"""The soak's sampler and judge (scripts/soak.sh).

  soak-report.py sample --every S --secs N --metrics ADDR,ADDR [--parts ADDR]
                        --out DIR NAME=PID...
      every S seconds for N seconds: each process's RSS (VmRSS, and of it
      the anonymous part, RssAnon, to tell heap growth from mapped files) and open
      file descriptors, and the gateways' send p99 over the last interval
      (from the confab_gateway_send_seconds histogram buckets); with
      --parts, persist's memory by part as it reports it
      (confab_persist_queue_memory_bytes: RocksDB's memtables, table
      readers, block cache); rewrites DIR/samples.json after every sample.
  soak-report.py judge --out DIR
      applies the rule below to DIR/samples.json, writes DIR/verdict.json
      and DIR/soak.svg (RSS, open files and p99 over time); exits 1 when the
      rule is broken.

The rule. The first 10 % of the run (at least 60 s) is warm-up: caches
fill, connections open, the allocator finds its size. After it, a
process's baseline is the median of its first tenth of the samples (at
least 6) and its end the median of its last tenth: medians over minutes,
so neither one sample taken in a burst nor the saw-tooth of a database's
write buffers (persist swings by tens of MB within a minute) decides. A process fails when its end RSS is more than 5 % above its
baseline, or its end open-file count is above the highest count of its
baseline samples (no descriptor growth at all). The send p99 fails when its
end is above twice its baseline plus 10 ms (latency is the noisiest of the
three on a 2-core machine that runs the load too)."""

import json
import pathlib
import statistics
import sys
import time
import urllib.request

BUCKET = "confab_gateway_send_seconds_bucket"
WINDOW = 6
RSS_GROWTH = 0.05


def proc_sample(pid):
    try:
        rss = anon = 0
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
        fds = len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir()))
        return {"rss_kb": rss, "anon_kb": anon, "fds": fds}
    except OSError:
        return None


def scrape(addr):
    """The text of `addr`'s /metrics, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def buckets(addr):
    """{le: cumulative count} of the send histogram at one gateway."""
    text = scrape(addr)
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith(BUCKET + "{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


PARTS = "confab_persist_queue_memory_bytes"


def persist_parts(addr):
    """{part: bytes} of what persist at `addr` reports of its memory."""
    out = {}
    for line in (scrape(addr) or "").splitlines():
        if line.startswith(PARTS + "{"):
            part = line.split('part="', 1)[1].split('"', 1)[0]
            out[part] = int(float(line.rsplit(" ", 1)[1]))
    return out


def p99(prev, cur):
    """The 99th percentile (ms) of what the buckets counted between two
    scrapes, interpolated within its bucket; (None, 0) when nothing."""
    les = sorted(cur)
    delta = [cur[le] - prev.get(le, 0.0) for le in les]
    total = delta[-1] if delta else 0
    if total <= 0:
        return None, 0
    want = 0.99 * total
    lower_le, lower_n = 0.0, 0.0
    for le, n in zip(les, delta):
        if n >= want:
            if le == float("inf"):
                return lower_le * 1000, int(total)
            frac = (want - lower_n) / max(n - lower_n, 1e-9)
            return (lower_le + frac * (le - lower_le)) * 1000, int(total)
        lower_le, lower_n = le, n
    return lower_le * 1000, int(total)


def sample(args):
    every = float(args["--every"])
    secs = float(args["--secs"])
    out = pathlib.Path(args["--out"])
    metrics = [m for m in args["--metrics"].split(",") if m]
    procs = dict(p.split("=", 1) for p in args["rest"])
    samples = []
    start = time.monotonic()
    prev = {m: buckets(m) or {} for m in metrics}
    while time.monotonic() - start < secs:
        time.sleep(every)
        t = time.monotonic() - start
        merged_prev, merged_cur = {}, {}
        for m in metrics:
            cur = buckets(m)
            if cur is None:
                continue
            for le, n in cur.items():
                merged_cur[le] = merged_cur.get(le, 0) + n
                merged_prev[le] = merged_prev.get(le, 0) + prev[m].get(le, 0)
            prev[m] = cur
        lat, sends = p99(merged_prev, merged_cur) if merged_cur else (None, 0)
        row = {"t": round(t, 1), "p99_ms": lat, "sends": sends, "procs": {}}
        for name, pid in procs.items():
            s = proc_sample(pid)
            if s is not None:
                row["procs"][name] = s
        if args.get("--parts"):
            row["parts"] = persist_parts(args["--parts"])
        samples.append(row)
        (out / "samples.json").write_text(json.dumps({"every_s": every, "samples": samples}, indent=1))
        print(f"soak {t:7.0f} s  p99 {lat if lat is None else round(lat, 1)} ms  sends {sends}  " +
              "  ".join(f"{n} {s['rss_kb'] // 1024} MB/{s['fds']} fds" for n, s in row["procs"].items()),
              flush=True)


def judge(args):
    out = pathlib.Path(args["--out"])
    data = json.loads((out / "samples.json").read_text())
    samples = data["samples"]
    if not samples:
        sys.exit("soak: no samples")
    span = samples[-1]["t"]
    warm = max(60.0, 0.1 * span)
    after = [s for s in samples if s["t"] >= warm]
    window = max(WINDOW, len(after) // 10)
    if len(after) < 2 * window:
        sys.exit(f"soak: {len(after)} samples after the {warm:.0f} s warm-up; {2 * window} needed")
    head, tail = after[:window], after[-window:]
    verdict = {"warmup_s": warm, "span_s": span, "processes": {}, "failures": []}
    names = sorted({n for s in after for n in s["procs"]})
    for name in names:
        rss0 = statistics.median(s["procs"][name]["rss_kb"] for s in head if name in s["procs"])
        rss1 = statistics.median(s["procs"][name]["rss_kb"] for s in tail if name in s["procs"])
        fd_max0 = max(s["procs"][name]["fds"] for s in head if name in s["procs"])
        fd1 = statistics.median(s["procs"][name]["fds"] for s in tail if name in s["procs"])
        growth = (rss1 - rss0) / rss0 if rss0 else 0.0
        # Of it, the anonymous part (heap), when the samples have it.
        anon = [[s["procs"][name].get("anon_kb") for s in part if name in s["procs"]] for part in (head, tail)]
        anon0, anon1 = (statistics.median(a) if a and None not in a else None for a in anon)
        verdict["processes"][name] = {
            "rss_baseline_kb": rss0, "rss_end_kb": rss1, "rss_growth": round(growth, 4),
            "anon_baseline_kb": anon0, "anon_end_kb": anon1,
            "fds_baseline_max": fd_max0, "fds_end": fd1,
        }
        if growth > RSS_GROWTH:
            verdict["failures"].append(f"{name}: RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MB (+{growth:.1%})")
        if fd1 > fd_max0:
            verdict["failures"].append(f"{name}: open files {fd_max0} -> {fd1}")
    lat0 = [s["p99_ms"] for s in head if s["p99_ms"] is not None]
    lat1 = [s["p99_ms"] for s in tail if s["p99_ms"] is not None]
    if lat0 and lat1:
        p0, p1 = statistics.median(lat0), statistics.median(lat1)
        verdict["p99_ms"] = {"baseline": round(p0, 2), "end": round(p1, 2),
                             "max": round(max(s["p99_ms"] for s in after if s["p99_ms"] is not None), 2)}
        if p1 > 2 * p0 + 10:
            verdict["failures"].append(f"send p99 {p0:.1f} -> {p1:.1f} ms")
    else:
        verdict["failures"].append("no send latency measured (was there load?)")
    # Persist's own account of its memory, beside its RSS: which part grew.
    parts = sorted({k for s in after for k in s.get("parts", {})})
    if parts:
        verdict["persist_parts_kb"] = {}
        for k in parts:
            v0, v1 = (statistics.median(s["parts"].get(k, 0) for s in part) / 1024 for part in (head, tail))
            verdict["persist_parts_kb"][k] = {"baseline": round(v0), "end": round(v1)}
    (out / "verdict.json").write_text(json.dumps(verdict, indent=1))
    (out / "soak.svg").write_text(svg(samples, warm))
    for name, v in verdict["processes"].items():
        print(f"{name:>10}: RSS {v['rss_baseline_kb'] / 1024:7.1f} -> {v['rss_end_kb'] / 1024:7.1f} MB "
              f"({v['rss_growth']:+.1%}), open files {v['fds_baseline_max']} -> {v['fds_end']:.0f}"
              + (f", anonymous {v['anon_baseline_kb'] / 1024:.1f} -> {v['anon_end_kb'] / 1024:.1f} MB"
                 if v["anon_baseline_kb"] is not None else ""))
    if parts:
        print("   persist: " + ", ".join(f"{k} {v['baseline'] / 1024:.1f} -> {v['end'] / 1024:.1f} MB"
                                        for k, v in verdict["persist_parts_kb"].items()))
    if "p99_ms" in verdict:
        print(f"send p99: {verdict['p99_ms']['baseline']} -> {verdict['p99_ms']['end']} ms "
              f"(max {verdict['p99_ms']['max']} ms)")
    print(f"plot: {out / 'soak.svg'}")
    if verdict["failures"]:
        print("soak FAILED: " + "; ".join(verdict["failures"]), file=sys.stderr)
        sys.exit(1)
    print("soak passed: no growth beyond the rule")


def svg(samples, warm):
    """Three panels over time: RSS (MB), open files and send p99 (ms)."""
    w, h, pad = 900, 200, 50
    names = sorted({n for s in samples for n in s["procs"]})
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    t_max = max(s["t"] for s in samples) or 1
    panels = [
        ("RSS (MB)", {n: [(s["t"], s["procs"][n]["rss_kb"] / 1024) for s in samples if n in s["procs"]] for n in names}),
        ("open files", {n: [(s["t"], s["procs"][n]["fds"]) for s in samples if n in s["procs"]] for n in names}),
        ("send p99 (ms)", {"gateways": [(s["t"], s["p99_ms"]) for s in samples if s["p99_ms"] is not None]}),
    ]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 200}" height="{3 * (h + pad) + pad}" '
             'font-family="sans-serif" font-size="12">']
    for i, (title, series) in enumerate(panels):
        top = pad + i * (h + pad)
        y_max = max((v for pts in series.values() for _, v in pts), default=1) * 1.1 or 1
        x = lambda t: pad + t / t_max * w  # noqa: E731
        y = lambda v: top + h - v / y_max * h  # noqa: E731
        parts.append(f'<text x="{pad}" y="{top - 8}" font-weight="bold">{title}</text>')
        parts.append(f'<rect x="{pad}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
        parts.append(f'<line x1="{x(warm):.1f}" y1="{top}" x2="{x(warm):.1f}" y2="{top + h}" '
                     'stroke="#bbb" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{pad - 4}" y="{top + 4}" text-anchor="end">{y_max:.0f}</text>')
        parts.append(f'<text x="{pad - 4}" y="{top + h}" text-anchor="end">0</text>')
        parts.append(f'<text x="{pad + w}" y="{top + h + 14}" text-anchor="end">{t_max:.0f} s</text>')
        for j, (name, pts) in enumerate(series.items()):
            c = colors[j % len(colors)]
            line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
            parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{line}"/>')
            parts.append(f'<text x="{pad + w + 10}" y="{top + 14 + 14 * j}" fill="{c}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("sample", "judge"):
        sys.exit(__doc__)
    args, rest, it = {}, [], iter(sys.argv[2:])
    for a in it:
        if a.startswith("--"):
            args[a] = next(it)
        else:
            rest.append(a)
    args["rest"] = rest
    (sample if sys.argv[1] == "sample" else judge)(args)


if __name__ == "__main__":
    main()
