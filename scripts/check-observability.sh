#!/usr/bin/env bash
# Checks Confab's monitoring as code (deploy/prometheus, deploy/grafana,
# deploy/loki):
#   - promtool check config / check rules / test rules (every alert has a
#     firing and a quiet case);
#   - every metric a rule or dashboard reads is exported by the Rust code,
#     is a recording rule, or (rules only) is listed below as pending;
#   - dashboards: valid JSON, unique uids and panel ids, the $datasource and
#     $instance variables, expressions that parse, in sync with
#     deploy/grafana/generate.py;
#   - alerts: severity, summary, description, a runbook section in
#     deploy/OBSERVABILITY.md;
#   - Grafana provisioning, Loki and Alloy configs: they parse and refer to
#     what exists.
# Installs Debian's `prometheus` package (for promtool) when promtool is
# missing, and leaves no Prometheus server running. Run from anywhere;
# exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '== %s\n' "$*"; }
fail() { printf 'check-observability: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    fail "this needs root: $*"
  fi
}

# The package's own server must not keep running (nor start at boot).
stop_packaged_prometheus() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl stop prometheus.service >/dev/null 2>&1 || true
    as_root systemctl disable prometheus.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
}

# apt_install PKG...: Debian packages, reading the package lists first only
# when the install fails without.
apt_install() {
  local log=/tmp/confab-check-observability-apt.log
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends "$@" >"$log" 2>&1; then
    as_root apt-get update >>"$log" 2>&1 || true
    as_root apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1 ||
      { tail -n 20 "$log" >&2; fail "apt-get install $* failed"; }
  fi
}

installed_now=0
if ! command -v promtool >/dev/null 2>&1; then
  step "installing promtool (Debian package prometheus)"
  apt_install prometheus
  installed_now=1
  stop_packaged_prometheus
fi
command -v promtool >/dev/null 2>&1 || fail "promtool not found after installing prometheus"

# Anything listening on Prometheus' port (empty without `ss`).
listening_9090() {
  if command -v ss >/dev/null 2>&1; then ss -ltnH 'sport = :9090' 2>/dev/null || true; fi
}

if [ -n "$(listening_9090)" ]; then
  if [ "$installed_now" = 1 ]; then
    fail "something listens on :9090 after installing prometheus; stop it (systemctl stop prometheus)"
  fi
  echo "note: something listens on :9090 (not started by this script)" >&2
fi

# A Python with PyYAML: the one on PATH, else Debian's with python3-yaml.
PY=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' >/dev/null 2>&1; then
    PY="$candidate"
    break
  fi
done
if [ -z "$PY" ]; then
  step "installing python3-yaml"
  apt_install python3-yaml
  PY=/usr/bin/python3
fi

step "promtool $(promtool --version 2>&1 | head -n 1 | awk '{print $3}')"

# Every check runs; the failed ones are named at the end.
failed=()
check() {
  local name="$1"
  shift
  step "$name"
  if ! "$@"; then failed+=("$name"); fi
}

check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
check "promtool check rules deploy/prometheus/rules/*.yml" \
  promtool check rules deploy/prometheus/rules/*.yml
check "promtool test rules deploy/prometheus/tests/*.yml" \
  promtool test rules deploy/prometheus/tests/*.yml
check "dashboards in sync with deploy/grafana/generate.py" \
  "$PY" deploy/grafana/generate.py --check

# Metric names, dashboards, alerts, provisioning, Loki and Alloy configs.
consistency() {
  "$PY" - <<'PY'
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

errors = []


def err(msg):
    errors.append(msg)


# Metrics the alerts read that the processes do not export yet (each is
# described in deploy/OBSERVABILITY.md). Dashboards may not use them.
PENDING = set()
# Series Prometheus makes itself.
BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# ---- what the Rust code exports -----------------------------------------
exported = set()
ctor = re.compile(
    r'(?:Opts::new|HistogramOpts::new|IntCounter::new|IntGauge::new|Gauge::new|Counter::new|Histogram::new)'
    r'\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"'
)
sources = [p for p in glob.glob("*/src/**/*.rs", recursive=True) if not p.startswith(("target/", "fuzz/"))]
by_crate = {}
for path in sources:
    text = open(path, encoding="utf-8").read()
    by_crate.setdefault(path.split("/", 1)[0], []).append(text)
    exported.update(re.findall(r'"(confab_[a-z0-9_]+)"', text))
for crate, texts in by_crate.items():
    whole = "\n".join(texts)
    prefix = re.search(r'Registry::new_custom\(\s*Some\("([a-z_]+)"', whole)
    if prefix:
        for name in ctor.findall(whole):
            exported.add(f"{prefix.group(1)}_{name}")
if len(exported) < 50:
    err(f"found only {len(exported)} metric names in */src: is this the repository root?")

for name in sorted(PENDING & exported):
    print(f"note: {name} is exported now: drop it from PENDING in scripts/check-observability.sh")


def exists(metric):
    if metric in exported or metric in BUILTIN:
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", metric)
    return base in exported


# ---- PromQL: the metric names an expression reads -----------------------
FUNCS_AND_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "atan2",
}


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"\$\{?\w+\}?", "1", e)                      # Grafana variables
    e = re.sub(r"\{[^{}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\[\]]*\]", "", e)                      # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", e)
    e = re.sub(r"\boffset\s+\S+", " ", e)
    names = []
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in FUNCS_AND_WORDS:
            continue
        if re.fullmatch(r"\d+(\.\d+)?(e[+-]?\d+)?", word):
            continue
        names.append(word)
    return names


# ---- rules ---------------------------------------------------------------
recorded, alerts = set(), {}
rule_exprs = []
for path in sorted(glob.glob("deploy/prometheus/rules/*.yml")):
    doc = yaml.safe_load(open(path))
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                recorded.add(rule["record"])
            else:
                alerts[rule["alert"]] = (path, rule)
            rule_exprs.append((path, rule.get("record") or rule.get("alert"), rule["expr"]))

for path, name, expr in rule_exprs:
    for metric in metric_names(expr):
        if not (exists(metric) or metric in recorded or metric in PENDING):
            err(f"{path}: {name} reads {metric}, which no process exports and no rule records")

doc_text = open("deploy/OBSERVABILITY.md", encoding="utf-8").read()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+\s+(.+)$", doc_text, re.M)}
for name, (path, rule) in alerts.items():
    labels, ann = rule.get("labels", {}), rule.get("annotations", {})
    if labels.get("severity") not in ("critical", "warning", "info"):
        err(f"{path}: {name} has no severity label (critical, warning, info)")
    for key in ("summary", "description", "runbook"):
        if not ann.get(key):
            err(f"{path}: {name} has no {key} annotation")
    runbook = ann.get("runbook", "")
    if "#" in runbook and runbook.split("#", 1)[1] not in anchors:
        err(f"{path}: {name}'s runbook {runbook} names no section of deploy/OBSERVABILITY.md")

# Every alert: at least one case where it fires and one where it does not.
fires, quiet = set(), set()
for path in sorted(glob.glob("deploy/prometheus/tests/*.yml")):
    for test in yaml.safe_load(open(path)).get("tests", []):
        for case in test.get("alert_rule_test", []) or []:
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
for name in sorted(alerts):
    if name not in fires:
        err(f"deploy/prometheus/tests: no case where {name} fires")
    if name not in quiet:
        err(f"deploy/prometheus/tests: no case where {name} stays quiet")

# ---- dashboards ----------------------------------------------------------
dash_exprs = []
uids = {}
dashboards = sorted(glob.glob("deploy/grafana/dashboards/*.json"))
if not dashboards:
    err("no dashboards in deploy/grafana/dashboards")


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


for path in dashboards:
    try:
        d = json.load(open(path))
    except ValueError as e:
        err(f"{path}: not JSON: {e}")
        continue
    uid = d.get("uid")
    if not uid or uid in uids:
        err(f"{path}: uid {uid!r} missing or also in {uids.get(uid)}")
    uids[uid] = path
    names = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    if names.get("datasource", {}).get("type") != "datasource":
        err(f"{path}: no `datasource` variable of type datasource")
    if "instance" not in names:
        err(f"{path}: no `instance` variable")
    seen = set()
    for p in walk(d.get("panels", [])):
        pid = p.get("id")
        if not isinstance(pid, int) or pid in seen:
            err(f"{path}: panel {p.get('title')!r} has id {pid!r}, missing or not unique")
        seen.add(pid)
        if "gridPos" not in p:
            err(f"{path}: panel {pid} has no gridPos")
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            err(f"{path}: panel {pid} ({p.get('title')}) has no query")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            err(f"{path}: panel {pid} does not use the $datasource variable")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            err(f"{path}: panel {pid} repeats a refId")
        for t in targets:
            expr = t.get("expr", "")
            if not expr.strip():
                err(f"{path}: panel {pid} has an empty expression")
                continue
            dash_exprs.append((path, pid, expr))
            for metric in metric_names(expr):
                if metric in PENDING:
                    err(f"{path}: panel {pid} reads {metric}, which no process exports yet")
                elif not (exists(metric) or metric in recorded):
                    err(f"{path}: panel {pid} reads {metric}, which no process exports and no rule records")

# The expressions parse: promtool checks them as recording rules, with
# Grafana's variables given values.
if dash_exprs:
    rules = {"groups": [{"name": "dashboards", "rules": []}]}
    for i, (path, pid, expr) in enumerate(dash_exprs):
        e = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        rules["groups"][0]["rules"].append({"record": f"dashboard:expr_{i}", "expr": e})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
    try:
        out = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        if out.returncode != 0:
            for line in (out.stdout + out.stderr).splitlines():
                m = re.search(r'"dashboard:expr_(\d+)": (.*)', line)
                if m:
                    path, pid, expr = dash_exprs[int(m.group(1))]
                    err(f"{path}: panel {pid}: {m.group(2)}: {expr}")
            if not any("does not parse" in e or "could not parse" in e for e in errors):
                err("promtool could not check the dashboards' expressions:\n" + out.stdout + out.stderr)
    finally:
        os.unlink(f.name)

# ---- Grafana provisioning -----------------------------------------------
ds_uids = set()
for path in glob.glob("deploy/grafana/provisioning/datasources/*.yml"):
    for ds in yaml.safe_load(open(path)).get("datasources", []):
        ds_uids.add(ds.get("type"))
        if not ds.get("url"):
            err(f"{path}: data source {ds.get('name')} has no url")
for kind in ("prometheus", "loki"):
    if kind not in ds_uids:
        err(f"deploy/grafana/provisioning/datasources: no {kind} data source")
providers = [p for path in glob.glob("deploy/grafana/provisioning/dashboards/*.yml")
             for p in yaml.safe_load(open(path)).get("providers", [])]
if not any(p.get("type") == "file" and p.get("options", {}).get("path") for p in providers):
    err("deploy/grafana/provisioning/dashboards: no file provider with a path")

# ---- Loki ----------------------------------------------------------------
loki = yaml.safe_load(open("deploy/loki/loki.yml"))
if not loki.get("limits_config", {}).get("allow_structured_metadata"):
    err("deploy/loki/loki.yml: structured metadata not allowed (Alloy sends trace_id, user, ...)")
schemas = [c.get("schema") for c in loki.get("schema_config", {}).get("configs", [])]
if not schemas or schemas[-1] != "v13":
    err(f"deploy/loki/loki.yml: the newest schema is {schemas[-1:]}, structured metadata needs v13")

# ---- Alloy (no alloy binary offline: syntax by hand) ---------------------
KNOWN = {
    "local.file_match", "loki.source.file", "discovery.docker", "discovery.relabel",
    "loki.source.docker", "loki.process", "loki.write", "discovery.kubernetes",
    "loki.source.kubernetes",
}
path = "deploy/loki/config.alloy"
src = open(path, encoding="utf-8").read()
skeleton, stack, i, line = [], [], 0, 1
pairs = {"}": "{", "]": "[", ")": "("}
while i < len(src):
    c = src[i]
    if c == "\n":
        line += 1
    if src.startswith("//", i):
        j = src.find("\n", i)
        i = len(src) if j < 0 else j
        continue
    if src.startswith("/*", i):
        j = src.find("*/", i + 2)
        if j < 0:
            err(f"{path}:{line}: unterminated comment")
            break
        line += src.count("\n", i, j)
        i = j + 2
        continue
    if c in "\"`":
        j = i + 1
        while j < len(src) and src[j] != c:
            if c == '"' and src[j] == "\\":
                j += 1
            elif c == '"' and src[j] == "\n":
                err(f"{path}:{line}: newline in a string")
                break
            j += 1
        if j >= len(src):
            err(f"{path}:{line}: unterminated string")
            break
        line += src.count("\n", i, j)
        skeleton.append(src[i:j + 1] if len(stack) == 0 else '""')
        i = j + 1
        continue
    if c in "{[(":
        stack.append((c, line))
    elif c in "}])":
        if not stack or stack[-1][0] != pairs[c]:
            err(f"{path}:{line}: unbalanced {c}")
            break
        stack.pop()
    skeleton.append(c)
    i += 1
if stack:
    err(f"{path}: unclosed {stack[-1][0]} from line {stack[-1][1]}")
flat = "".join(skeleton)
declared = set()
for kind, label in re.findall(r'(?m)^([a-z_]+(?:\.[a-z_]+)+)\s+"([A-Za-z0-9_]+)"\s*\{', flat):
    if kind not in KNOWN:
        err(f"{path}: unknown component {kind}")
    declared.add(f"{kind}.{label}")
if not declared:
    err(f"{path}: no components")
for ref in sorted(set(re.findall(r"\b((?:local|loki|discovery)\.[a-z_.]+?\.[A-Za-z0-9_]+)\.(?:receiver|targets|output)\b", flat))):
    if ref not in declared:
        err(f"{path}: {ref} is used but not declared")

if errors:
    for e in errors:
        print("FAIL: " + e, file=sys.stderr)
    sys.exit(1)
print(f"{len(exported)} exported metric names, {len(recorded)} recording rules, {len(alerts)} alerts "
      f"(pending metrics: {', '.join(sorted(PENDING)) or 'none'}), {len(dashboards)} dashboards with "
      f"{len(dash_exprs)} queries, {len(declared)} Alloy components: OK")
PY
}
check "metric names, dashboards, alerts, provisioning, Loki and Alloy configs" consistency

if [ "$installed_now" = 1 ] && [ -n "$(listening_9090)" ]; then
  fail "a Prometheus server listens on :9090; stop it (systemctl stop prometheus)"
fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
step "observability checks passed"
