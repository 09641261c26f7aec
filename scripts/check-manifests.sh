#!/usr/bin/env bash
# Offline checks of the deployment manifests (deploy/compose.yml, deploy/k8s/):
# nothing is started, no cluster or Docker engine is needed.
#
#   scripts/check-manifests.sh        from the repository root (or anywhere)
#
# 1. Kubernetes: the kustomization rendered (kubectl's built-in kustomize when
#    there is a kubectl, and always by a small expander here that knows the
#    fields deploy/k8s uses; both must give the same objects), every object
#    validated against the Kubernetes 1.29 OpenAPI schemas in strict mode
#    (kubernetes-validate, schemas bundled in the package), then the
#    references between objects (Services -> pods, ports, ConfigMaps,
#    Secrets, probes, the preStop hook, resources).
# 2. Compose: `docker stack config` (the Swarm loader with its strict schema)
#    and `docker compose config` or `docker-compose config`, those at hand
#    (Debian's docker-compose is installed when there is none); then
#    structural checks of ours: ids, peers,
#    seeds, zones, networks (subnets inside 198.18.0.0/15), volumes,
#    secrets, health checks, restart policies.
# 3. The manifests against the sources, so that they do not rot: every
#    flag given to confab-router / confab-gateway / confab-persist /
#    confabctl exists in its clap definition, every CONFAB_* variable names
#    a key of the service's configuration that the environment can set
#    (etc/*.toml, kept equal to the structs by tests), every other variable
#    is read by the service or by the entrypoint, and every key of
#    deploy/k8s/config/*.toml exists in the matching etc/*.toml.
# 4. When release or debug binaries newer than the sources are in
#    CARGO_TARGET_DIR: each compose service's and each Kubernetes pod's
#    command line run with --check-config by the real binary.
#
# Installs into a virtualenv on first use (kubernetes-validate, PyYAML):
# CONFAB_MANIFEST_VENV, default ~/.cache/confab/manifest-venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${CONFAB_MANIFEST_VENV:-$HOME/.cache/confab/manifest-venv}"
K8S_VERSION="${K8S_VERSION:-1.29.0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"

if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  echo "== installing kubernetes-validate and PyYAML into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'kubernetes-validate==1.37.0' 'PyYAML>=6,<7' 'tomli>=2; python_version < "3.11"'
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Kubernetes: kubectl's kustomize when available (the real thing).
if command -v kubectl >/dev/null 2>&1; then
  echo "== kubectl kustomize deploy/k8s"
  kubectl kustomize deploy/k8s >"$WORK/kubectl.yaml"
fi

# Compose: every loader at hand. `docker stack config` is Swarm's (the
# stack schema, strict about unknown keys); docker compose / docker-compose
# load it as a compose project. With none of them, Debian's docker-compose.
echo "== compose file"
loaders=()
have_docker=0
command -v docker >/dev/null 2>&1 && have_docker=1
if [ "$have_docker" = 1 ] && docker stack config --help >/dev/null 2>&1; then
  (cd deploy && docker stack config -c compose.yml) >"$WORK/compose.out"
  loaders+=("docker stack config")
fi
if [ "$have_docker" = 1 ] && docker compose version >/dev/null 2>&1; then
  docker compose -f deploy/compose.yml config -q
  loaders+=("docker compose config")
else
  if [ ${#loaders[@]} = 0 ] && ! command -v docker-compose >/dev/null 2>&1 &&
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "   no docker CLI: installing Debian's docker-compose"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; } \
      >/dev/null 2>&1 || echo "   (docker-compose could not be installed)"
  fi
  if command -v docker-compose >/dev/null 2>&1; then
    # (It warns that plain compose ignores `configs:`; docker compose v2 does not.)
    docker-compose -f deploy/compose.yml config -q 2>"$WORK/compose.err" || { cat "$WORK/compose.err" >&2; exit 1; }
    loaders+=("docker-compose config")
  fi
fi
if [ ${#loaders[@]} = 0 ]; then
  echo "   no compose loader found: structural checks only"
else
  printf '   %s: ok\n' "${loaders[@]}"
fi

"$VENV/bin/python" - "$WORK" "$K8S_VERSION" <<'PY'
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

WORK = Path(sys.argv[1])
K8S_VERSION = sys.argv[2]
ROOT = Path.cwd()
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

errors = []
checked = {}


def fail(where, msg):
    errors.append(f"{where}: {msg}")


def count(what, n=1):
    checked[what] = checked.get(what, 0) + n


def read(path):
    return (ROOT / path).read_text()


# ---------------------------------------------------------------- sources

def clap(paths):
    """The long flags, `env =` names and subcommands of clap definitions."""
    flags, envs, subcommands = {"--help", "--version"}, set(), set()
    for p in paths:
        text = read(p)
        for m in re.finditer(
            r"#\[arg\((.*?)\)\]\s*(?:(?:///[^\n]*|#\[[^\n]*\])\s*)*(?:pub\s+)?(\w+)\s*:",
            text,
            re.S,
        ):
            attr, field = m.group(1), m.group(2)
            long = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
            if long:
                flags.add("--" + long.group(1))
            elif re.search(r"\blong\b", attr):
                flags.add("--" + field.replace("_", "-"))
            env = re.search(r'\benv\s*=\s*"([^"]+)"', attr)
            if env:
                envs.add(env.group(1))
        for enum in re.finditer(r"pub enum (\w+) \{(.*?)\n\}", text, re.S):
            for v in re.finditer(r"^    ([A-Z]\w*)\b", enum.group(2), re.M):
                subcommands.add(re.sub(r"(?<!^)([A-Z])", r"-\1", v.group(1)).lower())
    return flags, envs, subcommands


TLS_ARGS = "tls/src/args.rs"
BINARIES = {
    "confab-router": clap(["router-raft/src/main.rs", TLS_ARGS]),
    "confab-gateway": clap(["gateway/src/main.rs", TLS_ARGS]),
    "confab-persist": clap(["persist/src/main.rs", TLS_ARGS]),
    "confabctl": clap(["confabctl/src/cli.rs"]),
}
for b, (flags, _, _) in BINARIES.items():
    if len(flags) < 4:
        fail("sources", f"found almost no clap flags for {b}: has its CLI moved?")

ROLE_OF = {"confab-router": "router", "confab-gateway": "gateway", "confab-persist": "persist"}
CONFIG_STRUCT = {
    "router": ("router-raft/src/config.rs", "RouterConfig"),
    "gateway": ("gateway/src/config.rs", "GatewayConfig"),
    "persist": ("persist/src/config.rs", "Config"),
}
CRATE_SRC = {"router": "router-raft/src", "gateway": "gateway/src", "persist": "persist/src"}

common_config = read("common/src/config.rs")
if 'Env::prefixed("CONFAB_")' not in common_config or '.split("__")' not in common_config:
    fail("common/src/config.rs", "the CONFAB_<SECTION>__<KEY> environment overrides are gone")


def env_top_keys(role):
    """Top-level keys the CONFAB_* environment may set: the fields of the
    config struct that the defaults serialize (common::config::env_overrides
    drops every other key, e.g. an Option skipped when None)."""
    path, name = CONFIG_STRUCT[role]
    m = re.search(r"pub struct %s \{(.*?)\n\}" % name, read(path), re.S)
    if not m:
        fail(path, f"struct {name} not found")
        return set(), set()
    settable, skipped = set(), set()
    attrs = ""
    for line in m.group(1).splitlines():
        s = line.strip()
        f = re.match(r"pub (\w+)\s*:", s)
        if f:
            (skipped if "skip_serializing_if" in attrs else settable).add(f.group(1))
            attrs = ""
        elif s.startswith("#["):
            attrs += s
    return settable, skipped


def expanded_sample(role):
    """etc/ROLE.toml with its commented-out keys and tables uncommented."""
    out = []
    for line in read(f"etc/{role}.toml").splitlines(True):
        m = re.match(r"^#\s?(\[\[?[a-z_.]+\]\]?\s*)$", line) or re.match(
            r"^#\s?([a-z_][a-z0-9_]*\s*=\s*\S.*)$", line
        )
        out.append(m.group(1) + "\n" if m else line)
    return tomllib.loads("".join(out))


def key_paths(d, pre=()):
    for k, v in d.items():
        yield pre + (k,)
        if isinstance(v, dict):
            yield from key_paths(v, pre + (k,))
        if isinstance(v, list):
            for e in v:
                if isinstance(e, dict):
                    yield from key_paths(e, pre + (k,))


SAMPLE_KEYS = {r: {".".join(p) for p in key_paths(expanded_sample(r))} for r in CONFIG_STRUCT}
ENV_TOP = {r: env_top_keys(r) for r in CONFIG_STRUCT}


def service_env(role):
    """Variables a service reads besides CONFAB_*: std::env::var in its
    crate, and the logging ones of confab-common."""
    names = {"RUST_LOG", "NO_COLOR"}
    telemetry = read("common/src/telemetry.rs")
    if "from_default_env" not in telemetry:
        names.discard("RUST_LOG")
    for p in (ROOT / CRATE_SRC[role]).rglob("*.rs"):
        names |= set(re.findall(r'env::var(?:_os)?\("([A-Z0-9_]+)"\)', p.read_text()))
    return names


SERVICE_ENV = {r: service_env(r) for r in CONFIG_STRUCT}
CTL_FLAGS, CTL_ENV, CTL_SUBCOMMANDS = BINARIES["confabctl"]


def check_flags(where, binary, tokens):
    flags = BINARIES[binary][0]
    for t in tokens:
        if t.startswith("--"):
            flag = t.split("=", 1)[0]
            count("flags checked")
            if flag not in flags:
                fail(where, f"{binary} has no flag {flag}")


def check_env(where, role, name, script_text="", ctl_ok=False):
    count("environment variables checked")
    if name.startswith("CONFAB_"):
        parts = name[len("CONFAB_"):].lower().split("__")
        settable, skipped = ENV_TOP[role]
        if ctl_ok and name in CTL_ENV:
            # Read by confabctl in the same container; the service must not
            # take it for one of its own keys.
            if parts[0] in settable:
                fail(where, f"{name} is meant for confabctl but confab-{role} reads it as `{parts[0]}`")
            return
        if parts[0] in skipped:
            fail(where, f"{name}: confab-{role} ignores it (`{parts[0]}` is left out of the "
                        "defaults, so the CONFAB_* filter drops it): use the flag instead")
        elif parts[0] not in settable:
            fail(where, f"{name}: confab-{role} has no top-level key `{parts[0]}`")
        elif ".".join(parts) not in SAMPLE_KEYS[role]:
            fail(where, f"{name}: no key `{'.'.join(parts)}` in etc/{role}.toml")
        return
    if name in SERVICE_ENV[role]:
        return
    if script_text and re.search(r"\$\{?%s\b" % re.escape(name), script_text):
        return
    fail(where, f"{name}: neither confab-{role} nor its entrypoint reads it")


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


FORBIDDEN = re.compile(
    r"(?<![\d.])(?:10\.\d{1,3}\.\d{1,3}\.\d{1,3}|172\.(?:1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3}|192\.168\.\d{1,3}\.\d{1,3})"
)
OUR_RANGE = ipaddress.ip_network("198.18.0.0/15")

for path in [DEPLOY / "compose.yml", DEPLOY / "README.md", *sorted(K8S.rglob("*"))]:
    if path.is_file():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                fail(f"{path.relative_to(ROOT)}:{n}", "a private-range address; use 198.18.0.0/15")

# ------------------------------------------------------------ kubernetes

def load_docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "PriorityClass"}


def expand_kustomization(root):
    """The subset of kustomize that deploy/k8s uses: resources (files),
    namespace, labels (metadata only), images, configMapGenerator (files,
    literals; no name hash). Anything else is refused, so that this does not
    drift silently from the real thing."""
    k = yaml.safe_load((root / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "configMapGenerator"}
    for key in k:
        if key not in known:
            fail("deploy/k8s/kustomization.yaml", f"`{key}`: not understood by the expander here")
    docs = []
    for r in k.get("resources", []):
        p = root / r
        if not p.is_file():
            fail("deploy/k8s/kustomization.yaml", f"resource {r} is not a file here")
            continue
        docs += load_docs(p.read_text())
    for g in k.get("configMapGenerator", []):
        data = {}
        for f in g.get("files", []):
            key, _, src = f.partition("=") if "=" in f else (Path(f).name, "", f)
            data[key] = (root / (src or f)).read_text()
        for lit in g.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g["name"]}, "data": data})
    for d in docs:
        md = d.setdefault("metadata", {})
        if k.get("namespace") and d["kind"] not in CLUSTER_SCOPED:
            md["namespace"] = k["namespace"]
        for lab in k.get("labels", []):
            md.setdefault("labels", {}).update(lab.get("pairs", {}))
        for c in containers_of(d):
            for img in k.get("images", []):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}"
    return docs, k


def pod_spec(d):
    if d.get("kind") in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
        return d["spec"]["template"]["spec"]
    if d.get("kind") == "Pod":
        return d["spec"]
    return None


def containers_of(d):
    spec = pod_spec(d)
    return (spec.get("containers", []) + spec.get("initContainers", [])) if spec else []


docs_py, kustomization = expand_kustomization(K8S)
generated = {g["name"] for g in kustomization.get("configMapGenerator", [])}


def base_name(kind, name):
    if kind == "ConfigMap":
        for g in generated:
            if re.fullmatch(re.escape(g) + r"-[a-z0-9]{10}", name):
                return g
    return name


def ident(d):
    return (d["kind"], d["metadata"].get("namespace"), base_name(d["kind"], d["metadata"]["name"]))


kubectl_out = WORK / "kubectl.yaml"
if kubectl_out.exists():
    docs = load_docs(kubectl_out.read_text())
    a, b = sorted(map(ident, docs)), sorted(map(ident, docs_py))
    if a != b:
        fail("deploy/k8s", f"kubectl kustomize and the expander here disagree:\n  {a}\n  {b}")
    renders = [("kubectl kustomize", docs), ("expander", docs_py)]
else:
    docs = docs_py
    renders = [("expander", docs_py)]

import kubernetes_validate  # noqa: E402

for label, ds in renders:
    for d in ds:
        where = f"{label}: {d['kind']}/{d['metadata']['name']}"
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
            count(f"Kubernetes {K8S_VERSION} schema validations (strict)")
        except kubernetes_validate.ValidationError as e:
            fail(where, f"schema: {e.message} at {'/'.join(map(str, e.path))}")
        except Exception as e:  # schema not found, unsupported version
            fail(where, f"schema: {getattr(e, 'message', e)}")

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
names = {(d["kind"], d["metadata"]["name"]) for d in docs}
configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}


def cm(base):
    for name, d in configmaps.items():
        if base_name("ConfigMap", name) == base:
            return d
    return None


readme = read("deploy/README.md") if (DEPLOY / "README.md").is_file() else ""
if not readme:
    fail("deploy/README.md", "missing")

for d in docs:
    md = d["metadata"]
    where = f"{d['kind']}/{md['name']}"
    if d["kind"] not in CLUSTER_SCOPED and md.get("namespace") != "confab":
        fail(where, "not in the confab namespace")

workloads = [d for d in docs if pod_spec(d) is not None]
for w in workloads:
    where = f"{w['kind']}/{w['metadata']['name']}"
    spec, tpl = w["spec"], w["spec"]["template"]
    tlabels = tpl["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    if any(tlabels.get(k) != v for k, v in sel.items()):
        fail(where, "selector does not match the pod template's labels")
    if w["kind"] == "StatefulSet":
        svc = next((s for s in by_kind.get("Service", []) if s["metadata"]["name"] == spec["serviceName"]), None)
        if not svc:
            fail(where, f"serviceName {spec['serviceName']} is not a Service here")
        elif svc["spec"].get("clusterIP") != "None":
            fail(where, f"serviceName {spec['serviceName']} is not headless")
    pspec = pod_spec(w)
    volumes = {v["name"]: v for v in pspec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    for v in volumes.values():
        if "configMap" in v and cm(base_name("ConfigMap", v["configMap"]["name"])) is None:
            fail(where, f"volume {v['name']}: no ConfigMap {v['configMap']['name']}")
        if "secret" in v:
            s = v["secret"]["secretName"]
            count("Secret references checked")
            if ("Secret", s) not in names and s not in readme:
                fail(where, f"Secret {s} is neither here nor described in deploy/README.md")
    for c in containers_of(w):
        cw = f"{where} container {c['name']}"
        r = c.get("resources", {})
        for part in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if res not in r.get(part, {}):
                    fail(cw, f"no resources.{part}.{res}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            pr = c.get(probe)
            if pr and "httpGet" in pr:
                port = pr["httpGet"]["port"]
                if isinstance(port, str) and port not in ports:
                    fail(cw, f"{probe}: no container port named {port}")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes and m["name"] not in claims:
                fail(cw, f"mount {m['name']}: no such volume")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                s, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
                count("Secret references checked")
                if ("Secret", s) not in names and not (s in readme and key in readme):
                    fail(cw, f"env {e['name']}: Secret {s} key {key} is neither here nor in deploy/README.md")
            if "configMapKeyRef" in ref and cm(base_name("ConfigMap", ref["configMapKeyRef"]["name"])) is None:
                fail(cw, f"env {e['name']}: no ConfigMap {ref['configMapKeyRef']['name']}")
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef and cm(base_name("ConfigMap", ef["configMapRef"]["name"])) is None:
                fail(cw, f"envFrom: no ConfigMap {ef['configMapRef']['name']}")

for s in by_kind.get("Service", []):
    where = f"Service/{s['metadata']['name']}"
    sel = s["spec"].get("selector", {})
    targets = [w for w in workloads
               if all(w["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
    if not targets:
        fail(where, "its selector matches no pod template")
    for p in s["spec"].get("ports", []):
        tp = p.get("targetPort", p["port"])
        if isinstance(tp, str) and not any(
            tp in {q.get("name") for c in containers_of(w) for q in c.get("ports", [])} for w in targets
        ):
            fail(where, f"targetPort {tp} is no named port of its pods")

for pdb in by_kind.get("PodDisruptionBudget", []):
    sel = pdb["spec"]["selector"]["matchLabels"]
    if not any(all(w["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
               for w in workloads):
        fail(f"PodDisruptionBudget/{pdb['metadata']['name']}", "its selector matches no pod template")

scripts_cm = cm("confab-scripts")
entrypoint = scripts_cm["data"].get("entrypoint.sh", "") if scripts_cm else ""
prestop = scripts_cm["data"].get("router-prestop.sh", "") if scripts_cm else ""
if not entrypoint or not prestop:
    fail("ConfigMap/confab-scripts", "entrypoint.sh and router-prestop.sh are expected")
topology = (cm("confab-topology") or {}).get("data", {})


def workload(name):
    return next((w for w in workloads if w["metadata"]["name"] == name), None)


# What each Confab workload must have.
EXPECT = {"confab-router": "router", "confab-gateway": "gateway", "confab-persist": "persist"}
for wname, role in EXPECT.items():
    w = workload(wname)
    if not w:
        fail("deploy/k8s", f"no workload {wname}")
        continue
    where = f"{w['kind']}/{wname}"
    c = w["spec"]["template"]["spec"]["containers"][0]
    if c.get("command") != ["sh", "/opt/confab/entrypoint.sh", role]:
        fail(where, f"command should be sh /opt/confab/entrypoint.sh {role}")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in w["spec"]["template"]["spec"].get("volumes", [])}
    if base_name("ConfigMap", vols.get(mounts.get("/opt/confab"), {}).get("configMap", {}).get("name", "")) != "confab-scripts":
        fail(where, "/opt/confab is not the confab-scripts ConfigMap")
    if base_name("ConfigMap", vols.get(mounts.get("/etc/confab/deploy"), {}).get("configMap", {}).get("name", "")) != "confab-config":
        fail(where, "/etc/confab/deploy is not the confab-config ConfigMap")
    rp = c.get("readinessProbe", {}).get("httpGet", {})
    if rp.get("path") != "/readyz":
        fail(where, "readiness probe is not GET /readyz")
    lp = c.get("livenessProbe", {}).get("httpGet", {})
    if lp and lp.get("path") != "/healthz":
        fail(where, "liveness probe is not GET /healthz")
    for e in c.get("env", []):
        check_env(f"{where} env", role, e["name"], entrypoint + prestop, ctl_ok=(role == "router"))
    for key in topology:
        if not re.search(r"\$\{?%s\b" % key, entrypoint):
            fail("ConfigMap/confab-topology", f"{key} is not read by entrypoint.sh")
    if role == "router":
        spec = w["spec"]
        if spec.get("replicas") != 3 or w["kind"] != "StatefulSet":
            fail(where, "routers: a StatefulSet of 3 replicas")
        if spec.get("podManagementPolicy") != "Parallel":
            fail(where, "routers must start in parallel (readiness needs a quorum)")
        if not spec.get("volumeClaimTemplates"):
            fail(where, "routers need volumeClaimTemplates")
        if "/var/lib/confab/router" not in mounts:
            fail(where, "the data volume is not at /var/lib/confab/router")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            fail(where, "liveness probe is not GET /healthz")
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if pre != ["sh", "/opt/confab/router-prestop.sh"]:
            fail(where, "preStop should run sh /opt/confab/router-prestop.sh")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
                if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v
                       for k, v in p["spec"]["selector"]["matchLabels"].items())]
        if not pdbs or pdbs[0]["spec"].get("maxUnavailable") != 1:
            fail(where, "no PodDisruptionBudget with maxUnavailable 1")
    if role == "gateway":
        svc_ports = {p["port"] for s in by_kind.get("Service", []) for p in s["spec"]["ports"]
                     if s["spec"].get("clusterIP") != "None"
                     and s["spec"].get("selector", {}).get("app.kubernetes.io/name") == wname}
        if not {7201, 8201} <= svc_ports:
            fail(where, "no Service with the TCP (7201) and WebSocket (8201) client ports")

# The scripts: flags per binary, function by function.
functions = dict(re.findall(r"^(\w+)\(\) \{\n(.*?)^\}", entrypoint, re.S | re.M))
for fn, binary in (("router", "confab-router"), ("gateway", "confab-gateway"), ("persist", "confab-persist")):
    body = functions.get(fn, "")
    if f"exec {binary} " not in body:
        fail("entrypoint.sh", f"{fn}() does not exec {binary}")
    check_flags(f"entrypoint.sh {fn}()", binary, re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", body))
    check_flags("entrypoint.sh use_tls()", binary,
                re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", functions.get("use_tls", "")))
    for v in re.findall(r"\b(CONFAB_[A-Z0-9_]+)=", body):
        check_env(f"entrypoint.sh {fn}()", ROLE_OF[binary], v)
calls = re.findall(r"(?:^|\$\(|;|&&|\|\|)\s*confabctl ([^\n]*)", prestop, re.M)
if not calls:
    fail("router-prestop.sh", "runs no confabctl")
for call in calls:
    words = call.split()
    check_flags("router-prestop.sh", "confabctl", [w for w in words if w.startswith("--")])
    # The subcommand words: those after the global flags (and their
    # values), up to the first that is not one.
    subs = []
    for w in re.sub(r"--[a-z-]+\s+\"\$\w+\"", " ", call).split():
        if w.startswith("--"):
            continue
        if not re.fullmatch(r"[a-z][a-z-]*", w):
            break
        subs.append(w)
    if not subs:
        fail("router-prestop.sh", f"confabctl {call}: no subcommand")
    for w in subs:
        count("confabctl subcommands checked")
        if w not in CTL_SUBCOMMANDS:
            fail("router-prestop.sh", f"confabctl has no subcommand {w}")
if "leader transfer" not in prestop:
    fail("router-prestop.sh", "does not transfer leaderships")
# The arguments the awk program prints for `leader transfer`.
printed = " ".join(re.findall(r"\bprint ([^\n]*)", prestop))
check_flags("router-prestop.sh (transfer arguments)", "confabctl",
            re.findall(r"(?<![\w-])--[a-z][a-z-]*", printed))
for e in ("CONFAB_ROUTER", "CONFAB_TLS_DIR"):
    if e not in CTL_ENV:
        fail("router-prestop.sh", f"confabctl does not read {e}")

# The configuration files against the samples.
for role in CONFIG_STRUCT:
    p = K8S / "config" / f"{role}.toml"
    for k in {".".join(x) for x in key_paths(tomllib.loads(p.read_text()))}:
        count("config keys checked")
        if k not in SAMPLE_KEYS[role]:
            fail(str(p.relative_to(ROOT)), f"`{k}` is no key of etc/{role}.toml")

# ---------------------------------------------------------------- compose

def interpolate(value):
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}",
                      lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


compose = interpolate(yaml.safe_load(read("deploy/compose.yml")))
services = compose.get("services", {})
nets = compose.get("networks", {})
subnets = {}
for n, spec in nets.items():
    cfg = (spec or {}).get("ipam", {}).get("config", [])
    if not cfg:
        fail(f"compose network {n}", "no explicit subnet")
    for c in cfg:
        net = ipaddress.ip_network(c["subnet"])
        if not net.subnet_of(OUR_RANGE):
            fail(f"compose network {n}", f"{net} is outside {OUR_RANGE}")
        for other, o in subnets.items():
            if net.overlaps(o):
                fail(f"compose network {n}", f"{net} overlaps {other}'s {o}")
        subnets[n] = net
    if (spec or {}).get("driver"):
        fail(f"compose network {n}", "no driver: overlay under Swarm, bridge under compose")
for z in ("zone1", "zone2", "public"):
    if z not in nets:
        fail("compose networks", f"no network {z}")


def command_of(s):
    cmd = s.get("command") or []
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def flag_values(cmd):
    out, i = {}, 1
    while i < len(cmd):
        t = cmd[i]
        if t.startswith("--"):
            if "=" in t:
                k, v = t.split("=", 1)
                out.setdefault(k, []).append(v)
            elif i + 1 < len(cmd) and not cmd[i + 1].startswith("--"):
                out.setdefault(t, []).append(cmd[i + 1])
                i += 1
            else:
                out.setdefault(t, []).append(True)
        i += 1
    return {k: v[-1] for k, v in out.items()}


routers, gateways, persists = {}, {}, {}
for name, s in services.items():
    where = f"compose service {name}"
    count("compose services checked")
    if "healthcheck" not in s:
        fail(where, "no healthcheck")
    dep = s.get("deploy", {})
    if "restart_policy" not in dep:
        fail(where, "no deploy.restart_policy")
    for n in s.get("networks", []):
        if n not in nets:
            fail(where, f"network {n} is not declared")
    for v in s.get("volumes", []):
        if isinstance(v, str):
            src = v.split(":")[0]
            if not src.startswith((".", "/")) and src not in compose.get("volumes", {}):
                fail(where, f"volume {src} is not declared")
        elif v.get("type") == "bind":
            if not v["source"].startswith("/") and not (DEPLOY / v["source"]).exists():
                fail(where, f"bind source {v['source']} does not exist under deploy/")
        elif v.get("source") and v["source"] not in compose.get("volumes", {}):
            fail(where, f"volume {v['source']} is not declared")
    for conf in s.get("configs", []):
        src = conf if isinstance(conf, str) else conf["source"]
        if src not in compose.get("configs", {}):
            fail(where, f"config {src} is not declared")
    hc = s.get("healthcheck", {})
    if hc.get("disable") and str(s.get("image", "")).startswith("confab"):
        fail(where, "a Confab service must keep its health check")
    targets = {}
    for sec in s.get("secrets", []):
        src = sec if isinstance(sec, str) else sec["source"]
        tgt = sec if isinstance(sec, str) else sec.get("target", src)
        if src not in compose.get("secrets", {}):
            fail(where, f"secret {src} is not declared")
        targets["/run/secrets/" + tgt] = src
    cmd = command_of(s)
    if not cmd or cmd[0] not in ROLE_OF:
        continue
    binary, role = cmd[0], ROLE_OF[cmd[0]]
    if not str(s.get("image", "")).startswith("confab"):
        fail(where, f"runs {binary} but its image is {s.get('image')}")
    check_flags(where, binary, [t for t in cmd[1:] if t.startswith("--")])
    env = s.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for k in env:
        check_env(f"{where} environment", role, k, ctl_ok=(role == "router"))
    f = flag_values(cmd)
    for flag in ("--tls-ca", "--tls-cert", "--tls-key", "--client-tls-cert", "--client-tls-key"):
        if flag in f and f[flag] not in targets:
            fail(where, f"{flag} {f[flag]} is no secret mounted in this service")
    if f.get("--config") and not str(f["--config"]).startswith("/etc/confab/"):
        fail(where, "--config should name a file of the image's /etc/confab")
    if f.get("--config"):
        sample = Path(f["--config"]).name
        if not (ROOT / "etc" / sample).is_file():
            fail(where, f"--config {f['--config']}: no etc/{sample} in the repository")
    if s.get("deploy", {}).get("replicas", 1) != 1:
        fail(where, "a Confab process with an id of its own runs as one replica")
    health = " ".join(map(str, s["healthcheck"]["test"])) if "healthcheck" in s else ""
    http = f.get("--metrics") if role == "gateway" else f.get("--http")
    if not http or f":{hostport(http)[1]}/readyz" not in health:
        fail(where, "the health check does not ask /readyz on the service's plain HTTP port")
    {"router": routers, "gateway": gateways, "persist": persists}[role][name] = (s, f, env)

if len(routers) != 3 or len(gateways) < 2 or len(persists) < 2:
    fail("compose", f"expected 3 routers, 2+ gateways, 2+ persist; have {len(routers)}, {len(gateways)}, {len(persists)}")
if not {"postgres", "rabbitmq", "prometheus", "grafana"} <= set(services):
    fail("compose", "postgres, rabbitmq, prometheus and grafana are expected")

ids, peer_lists = {}, set()
for name, (s, f, env) in routers.items():
    rid = int(f.get("--id", 0))
    if rid in ids:
        fail(f"compose service {name}", f"router id {rid} also used by {ids[rid]}")
    ids[rid] = name
    if f.get("--bootstrap"):
        peer_lists.add(f.get("--peers"))
    vols = [v for v in s.get("volumes", []) if isinstance(v, str) and not v.startswith((".", "/"))]
    if not vols or not str(f.get("--data-dir", "")).startswith(vols[0].split(":")[1]):
        fail(f"compose service {name}", "--data-dir is not on the service's named volume")
if sorted(ids) != [1, 2, 3]:
    fail("compose routers", f"ids should be 1, 2, 3 (are {sorted(ids)})")
if len(peer_lists) != 1:
    fail("compose routers", "the bootstrapping routers do not share one --peers list")
else:
    peers = dict(p.split("=", 1) for p in next(iter(peer_lists)).split(","))
    for pid, addr in peers.items():
        host, port = hostport(addr)
        r = routers.get(host)
        if not r or r[1].get("--id") != pid or hostport(r[1]["--listen"])[1] != port:
            fail("compose routers", f"peer {pid}={addr} is not router service {host} with --id {pid}")

gw_ids = {}
for name, (s, f, env) in gateways.items():
    where = f"compose service {name}"
    gid = int(f.get("--id", 0))
    if not 1 <= gid <= 1023 or gid in gw_ids:
        fail(where, f"gateway id {gid} is not unique in 1..1023")
    gw_ids[gid] = name
    for seed in f.get("--router", "").split(","):
        host, port = hostport(seed)
        if host not in routers or hostport(routers[host][1]["--listen"])[1] != port:
            fail(where, f"--router {seed} is no router's gRPC address")
    listed = set()
    for p in f.get("--persist", "").split(","):
        host, port = hostport(p)
        listed.add(host)
        if host not in persists or hostport(persists[host][1]["--listen"])[1] != port:
            fail(where, f"--persist {p} is no persist service's gRPC address")
    if listed != set(persists):
        fail(where, "--persist must list every persist service (the gateway follows each one's commits)")
    adv = env.get("CONFAB_ADVERTISE_GRPC", "")
    if not adv or hostport(adv)[0] != name or hostport(adv)[1] != hostport(f["--grpc"])[1]:
        fail(where, "CONFAB_ADVERTISE_GRPC should be SERVICE:GRPC_PORT")
    if env.get("CONFAB_QUEUE__BACKEND") != "amqp" or "@rabbitmq:" not in env.get("CONFAB_QUEUE__AMQP_URL", ""):
        fail(where, "the gateway should use RabbitMQ (CONFAB_QUEUE__BACKEND, CONFAB_QUEUE__AMQP_URL)")
for name, (s, f, env) in gateways.items():
    where = f"compose service {name}"
    zones_text = env.get("CONFAB_ZONES")
    if not zones_text:
        fail(where, "no CONFAB_ZONES")
        continue
    try:
        zones = json.loads(re.sub(r"([{,]\s*)([A-Za-z_][\w-]*)\s*=", r'\1"\2":', zones_text))
    except ValueError as e:
        fail(where, f"CONFAB_ZONES does not parse: {e}")
        continue
    if not any(not z["cidrs"] for z in zones):
        fail(where, "CONFAB_ZONES has no fallback zone (one without cidrs)")
    for z in zones:
        for g in z["gateways"]:
            if g not in gw_ids:
                fail(where, f"zone {z['name']} names gateway {g}, which is no gateway's --id")
        for c in z["cidrs"]:
            net = ipaddress.ip_network(c)
            holders = [n for n, sn in subnets.items() if sn == net]
            if not holders:
                fail(where, f"zone {z['name']}: {c} is no network's subnet")
            for g in z["gateways"]:
                gs = services.get(gw_ids.get(g), {})
                if holders and holders[0] not in gs.get("networks", []):
                    fail(where, f"zone {z['name']}: gateway {g} is not on network {holders[0]}")
for name, (s, f, env) in persists.items():
    if "@postgres:" not in env.get("DATABASE_URL", "") or "@rabbitmq:" not in env.get("AMQP_URL", ""):
        fail(f"compose service {name}", "DATABASE_URL / AMQP_URL should name the postgres and rabbitmq services")

for cname, c in compose.get("configs", {}).items():
    if "file" in c and not (DEPLOY / c["file"]).is_file():
        fail(f"compose config {cname}", f"{c['file']} does not exist under deploy/")

prom = services.get("prometheus", {})
if not any(isinstance(v, dict) and v.get("source") == "./prometheus" for v in prom.get("volumes", [])) \
        or "prometheus.yml" not in " ".join(map(str, prom.get("command", []))):
    fail("compose service prometheus", "should run deploy/prometheus/prometheus.yml")
if not (DEPLOY / "prometheus" / "prometheus.yml").is_file():
    fail("compose service prometheus", "deploy/prometheus/prometheus.yml is missing")
graf = services.get("grafana", {})
if not any(isinstance(v, dict) and v.get("source") == "./grafana/provisioning" for v in graf.get("volumes", [])):
    fail("compose service grafana", "should mount deploy/grafana/provisioning")

# ------------------------------------------------------------------ README
for needle in ("OBSERVABILITY.md", "make image", "docker stack deploy -c deploy/compose.yml",
               "kubectl apply -k deploy/k8s", "confab-backends", "database-url", "amqp-url",
               "confab-tls", "confab-gateway-client-tls", "scripts/check-manifests.sh"):
    if needle not in readme:
        fail("deploy/README.md", f"does not mention {needle}")
if "](OBSERVABILITY.md)" not in readme:
    fail("deploy/README.md", "no link to OBSERVABILITY.md")

# -------------------------------------------- the real binaries, when built
def fresh_binaries():
    target = Path(os.environ["CARGO_TARGET_DIR"])
    # The crates' sources (not their tests) and the protocol definitions.
    newest_src = max(p.stat().st_mtime for d in ("common", "tls", "router-raft", "router-state", "gateway",
                                                 "persist", "queue", "net", "router-client", "route", "proto")
                     for p in (ROOT / d).rglob("*")
                     if p.is_file() and (p.suffix == ".proto" or (p.suffix == ".rs" and "src" in p.parts)))
    for profile in ("release", "debug"):
        bins = {b: target / profile / b for b in ("confab-router", "confab-gateway", "confab-persist")}
        if all(p.is_file() and p.stat().st_mtime > newest_src for p in bins.values()):
            return profile, bins
    return None, None


profile, bins = fresh_binaries()
if bins is None:
    print("   --check-config by the binaries: skipped (no release or debug build newer than the sources)")
else:
    tmp = Path(tempfile.mkdtemp(dir=WORK))
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}

    def run_check(where, argv, env):
        r = subprocess.run(argv, env={**base_env, **env}, capture_output=True, text=True, timeout=30)
        count(f"--check-config runs ({profile} binaries)")
        if r.returncode != 0:
            fail(where, f"--check-config failed: {(r.stderr or r.stdout).strip()[-600:]}")

    for name, (s, f, env) in {**routers, **gateways, **persists}.items():
        cmd = command_of(s)
        argv = [str(bins[cmd[0]])]
        skip = False
        for t in cmd[1:]:
            if skip:
                skip = False
                continue
            if t == "--config":
                argv += ["--config", str(ROOT / "etc" / Path(flag_values(cmd)["--config"]).name)]
                skip = True
                continue
            argv.append(t)
        run_check(f"compose service {name}", argv + ["--check-config"],
                  {k: str(v) for k, v in (s.get("environment") or {}).items()})

    # Kubernetes: the entrypoint itself, with the binaries behind wrappers
    # that add --check-config, and the paths moved under a temp dir.
    wrap = tmp / "bin"
    wrap.mkdir()
    for b, p in bins.items():
        (wrap / b).write_text(f'#!/bin/sh\nexec "{p}" "$@" --check-config\n')
        (wrap / b).chmod(0o755)
    for pod, role in (("confab-router-0", "router"), ("confab-router-3", "router"),
                      ("confab-gateway-1", "gateway"), ("confab-persist-0", "persist")):
        # One data dir per pod: a router keeps its id on its volume.
        script = tmp / f"entrypoint-{pod}.sh"
        script.write_text(entrypoint.replace("/etc/confab/deploy", str(K8S / "config"))
                          .replace("/etc/confab/tls", str(tmp / "no-tls"))
                          .replace("/etc/confab/client-tls", str(tmp / "no-client-tls"))
                          .replace("/var/lib/confab", str(tmp / "data" / pod)))
        w = workload(pod.rsplit("-", 1)[0])
        env = {k: v for k, v in topology.items()}
        for e in w["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if "value" in e:
                env[e["name"]] = re.sub(r"\$\(POD_NAME\)", pod, e["value"])
            elif "secretKeyRef" in e.get("valueFrom", {}):
                key = e["valueFrom"]["secretKeyRef"]["key"]
                env[e["name"]] = {"database-url": "postgres://confab@db.example:5432/confab",
                                  "amqp-url": "amqp://confab:pw@broker.example:5672/%2f"}.get(key, "x")
        env["POD_NAME"] = pod
        env["PATH"] = f"{wrap}:{base_env['PATH']}"
        run_check(f"entrypoint.sh {role} as {pod}", ["sh", str(script), role], env)

# ------------------------------------------------------------------ report
for what, n in sorted(checked.items()):
    print(f"   {n:4d} {what}")
if errors:
    print(f"\n{len(errors)} problem(s):", file=sys.stderr)
    for e in errors:
        print(f"  - {e}", file=sys.stderr)
    sys.exit(1)
print("manifests: ok")
PY
