#!/usr/bin/env python3
"""Prints, as one JSON list, every PromQL expression deploy/ asks Prometheus
to evaluate, in the form a live check can query: each dashboard panel's
queries joined with `or` (the panel shows something when any of them
returns data; Grafana variables given values that select everything), each
recording rule's record name, and each alert's expression without its
top-level condition (the part that must return data for the alert to mean
anything; `up == 0` becomes `up`).

    scripts/observability-exprs.py > exprs.json

Each item: {"source": "FILE: panel N" or "FILE: RULE", "expr": "..."}.
"""
import glob
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)

CONDITION = re.compile(r"\s(==|!=|>=|<=|>|<|and|unless|or)\s")


def without_condition(expr):
    """The expression up to its first top-level comparison or set operator."""
    depth, quote = 0, None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = CONDITION.match(expr, i - 1) if i > 0 else None
            if m and m.start() == i - 1:
                return expr[: i - 1].strip()
        i += 1
    return expr.strip()


def dashboard_exprs():
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    for path in sorted(glob.glob("deploy/grafana/dashboards/*.json")):
        d = json.load(open(path))
        for p in walk(d.get("panels", [])):
            exprs = []
            for t in p.get("targets") or []:
                expr = t.get("expr", "")
                if expr.strip():
                    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
                    exprs.append(re.sub(r"\$\{?instance\}?", ".*", expr))
            if exprs:
                expr = exprs[0] if len(exprs) == 1 else " or ".join(f"({e})" for e in exprs)
                yield {"source": f"{path}: panel {p.get('id')} ({p.get('title')})", "expr": expr}


def rule_exprs():
    for path in sorted(glob.glob("deploy/prometheus/rules/*.yml")):
        for group in yaml.safe_load(open(path)).get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    yield {"source": f"{path}: {rule['record']}", "expr": rule["record"]}
                else:
                    yield {"source": f"{path}: {rule['alert']}", "expr": without_condition(rule["expr"])}


if __name__ == "__main__":
    json.dump(list(dashboard_exprs()) + list(rule_exprs()), sys.stdout, indent=1)
    print()
