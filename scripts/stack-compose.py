#!/usr/bin/python3
"""deploy/compose.yml run with podman itself, for `make stack-up`
(scripts/stack.sh).

Debian bookworm's podman-compose (1.0.3) cannot run that file as it is: it
ignores the networks' subnets, `profiles`, `configs` and
`deploy.restart_policy`, and merges an override's `ports` into the file's
instead of replacing them, so the gateways would be published on every
address. This reads the same file (YAML anchors and ${VAR:-default} as
compose does them) and starts each service with `podman run`:

  networks    PROJECT_NAME with the file's subnet; each service joins its
              networks under its service name (DNS by aardvark-dns)
  volumes     named volumes PROJECT_NAME; bind mounts relative to deploy/
  secrets     bind-mounted read-only at /run/secrets/TARGET (as plain
              docker compose does); configs likewise at their target
  ports       published on 127.0.0.1 only, at PUBLISHED + --port-offset
  healthcheck the file's test, timeout, retries and start period; no timer
              (podman would ask systemd for one): stack.sh runs the checks
  deploy      resources.limits (cpus, memory), reservations.memory,
              restart_policy.condition; replicas must be 1 (one host);
              placement, update_config and endpoint_mode mean nothing on
              one host and are left out
  ulimits     as given, except one above this host's hard limit (a container
              cannot be given more than the host has): left out, so the
              container keeps the host's limits
  logging     json-file with max-size (podman's k8s-file); max-file is not
              supported by podman and is left out

Any other service key stops it, so that a change to compose.yml is not
silently dropped here. Everything made carries the label
io.confab.stack=PROJECT (scripts/stack.sh down removes by it).

  stack-compose.py [--file F] [--project P] [--port-offset N] services
  stack-compose.py [...] ports SERVICE...      host:port published for each
  stack-compose.py [...] up SERVICE...
"""

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

KNOWN = {"image", "command", "entrypoint", "environment", "volumes", "secrets", "configs",
         "networks", "ports", "hostname", "user", "ulimits", "healthcheck",
         "stop_grace_period", "deploy", "logging"}
KNOWN_DEPLOY = {"replicas", "mode", "restart_policy", "update_config", "resources",
                "placement", "endpoint_mode"}
LABEL = "io.confab.stack"


def interpolate(value):
    """${VAR}, ${VAR:-default}, ${VAR-default} and $$, as compose does."""
    if isinstance(value, str):
        def sub(m):
            if m.group(0) == "$$":
                return "$"
            name, op, default = m.group(1), m.group(2), m.group(3) or ""
            v = os.environ.get(name)
            if op == ":-" and not v:
                return default
            if op == "-" and v is None:
                return default
            return v or ""
        return re.sub(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}", sub, value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def seconds(d):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(d))
    if not m or not any(m.groups()):
        sys.exit(f"stack-compose: cannot read the duration {d!r}")
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def podman(*args, check=True):
    r = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"podman {shlex.join(args)}: {r.stderr.strip()}")
    return r


class Stack:
    def __init__(self, path, project, port_offset):
        self.path = Path(path).resolve()
        self.dir = self.path.parent
        self.project = project
        self.offset = port_offset
        self.compose = interpolate(yaml.safe_load(self.path.read_text()))
        self.services = self.compose["services"]

    def name(self, thing):
        return f"{self.project}_{thing}"

    def local(self, p):
        return str((self.dir / p).resolve())

    def ports(self, svc):
        out = []
        for p in self.services[svc].get("ports", []):
            if isinstance(p, str):
                sys.exit(f"stack-compose: {svc}: only the long ports syntax is read")
            out.append((p["published"] + self.offset, p["target"], p.get("protocol", "tcp")))
        return out

    def ensure_network(self, net):
        name = self.name(net)
        if podman("network", "exists", name, check=False).returncode == 0:
            return name
        args = ["network", "create", "--label", f"{LABEL}={self.project}"]
        spec = self.compose.get("networks", {}).get(net) or {}
        for c in spec.get("ipam", {}).get("config", []):
            args += ["--subnet", c["subnet"]]
        podman(*args, name)
        return name

    def ensure_volume(self, vol):
        if vol not in (self.compose.get("volumes") or {}):
            sys.exit(f"stack-compose: volume {vol} is not declared")
        name = self.name(vol)
        if podman("volume", "exists", name, check=False).returncode != 0:
            podman("volume", "create", "--label", f"{LABEL}={self.project}", name)
        return name

    def run_args(self, svc):
        s = self.services[svc]
        unknown = set(s) - KNOWN
        if unknown:
            sys.exit(f"stack-compose: {svc}: keys not translated for podman: {', '.join(sorted(unknown))}")
        dep = s.get("deploy", {})
        unknown = set(dep) - KNOWN_DEPLOY
        if unknown:
            sys.exit(f"stack-compose: {svc}: deploy keys not translated: {', '.join(sorted(unknown))}")
        if dep.get("replicas", 1) != 1:
            sys.exit(f"stack-compose: {svc}: only one replica per service on one host")
        a = ["run", "-d", "--name", self.name(svc),
             "--label", f"{LABEL}={self.project}", "--label", f"{LABEL}.service={svc}"]
        for net in s.get("networks", []):
            a += ["--network", self.ensure_network(net)]
        a += ["--network-alias", svc]
        if s.get("hostname"):
            a += ["--hostname", s["hostname"]]
        if s.get("user"):
            a += ["--user", str(s["user"])]
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for k, v in env.items():
            a += ["--env", f"{k}={v}"]
        for v in s.get("volumes", []):
            if isinstance(v, str):
                src, dst, *mode = v.split(":")
                src = self.local(src) if src.startswith((".", "/")) else self.ensure_volume(src)
                a += ["--volume", ":".join([src, dst, *mode])]
            elif v.get("type") == "bind":
                a += ["--volume", f"{self.local(v['source'])}:{v['target']}" + (":ro" if v.get("read_only") else "")]
            elif v.get("type", "volume") == "volume":
                a += ["--volume", f"{self.ensure_volume(v['source'])}:{v['target']}" + (":ro" if v.get("read_only") else "")]
            else:
                sys.exit(f"stack-compose: {svc}: volume {v} not translated")
        for kind, base in (("secrets", "/run/secrets/"), ("configs", "/")):
            for ref in s.get(kind, []):
                src = ref if isinstance(ref, str) else ref["source"]
                tgt = ref if isinstance(ref, str) else ref.get("target", src)
                decl = (self.compose.get(kind) or {}).get(src) or {}
                if "file" not in decl:
                    sys.exit(f"stack-compose: {svc}: {kind[:-1]} {src} has no file")
                path = self.local(decl["file"])
                if not os.path.isfile(path):
                    sys.exit(f"stack-compose: {svc}: {kind[:-1]} {src}: no file {path}")
                target = tgt if tgt.startswith("/") else base + tgt
                a += ["--volume", f"{path}:{target}:ro"]
        for host, target, proto in self.ports(svc):
            a += ["--publish", f"127.0.0.1:{host}:{target}/{proto}"]
        ulimits = []
        for name, lim in (s.get("ulimits") or {}).items():
            soft, hard = (lim, lim) if isinstance(lim, int) else (lim["soft"], lim["hard"])
            rlimit = getattr(resource, f"RLIMIT_{name.upper()}", None)
            if rlimit is not None:
                host_hard = resource.getrlimit(rlimit)[1]
                if host_hard != resource.RLIM_INFINITY and hard > host_hard:
                    print(f"   {svc}: ulimit {name} {hard} is above this host's hard limit "
                          f"({host_hard}): the container keeps the host's limits")
                    continue
            ulimits.append(name)
            a += ["--ulimit", f"{name}={soft}:{hard}"]
        if ulimits and "nproc" not in ulimits:
            # Given any ulimit, podman raises nproc to its maximum unless
            # told otherwise; keep this host's.
            soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
            a += ["--ulimit", f"nproc={soft}:{hard}"]
        hc = s.get("healthcheck") or {}
        if hc.get("disable"):
            a += ["--no-healthcheck"]
        elif hc.get("test"):
            test = hc["test"]
            cmd = test[1] if test[0] == "CMD-SHELL" else json.dumps(test[1:])
            a += ["--health-cmd", cmd, "--health-interval", "disable"]
            for key, flag in (("timeout", "--health-timeout"), ("retries", "--health-retries"),
                              ("start_period", "--health-start-period")):
                if key in hc:
                    a += [flag, str(hc[key])]
        if "stop_grace_period" in s:
            a += ["--stop-timeout", str(seconds(s["stop_grace_period"]))]
        log = s.get("logging") or {}
        if log:
            if log.get("driver") != "json-file":
                sys.exit(f"stack-compose: {svc}: logging driver {log.get('driver')} not translated")
            a += ["--log-driver", "k8s-file"]
            if "max-size" in log.get("options", {}):
                a += ["--log-opt", f"max-size={log['options']['max-size']}"]
        res = dep.get("resources", {})
        if "cpus" in res.get("limits", {}):
            a += ["--cpus", str(res["limits"]["cpus"])]
        if "memory" in res.get("limits", {}):
            a += ["--memory", str(res["limits"]["memory"]).lower()]
        if "memory" in res.get("reservations", {}):
            a += ["--memory-reservation", str(res["reservations"]["memory"]).lower()]
        cond = dep.get("restart_policy", {}).get("condition")
        if cond:
            a += ["--restart", {"any": "always", "on-failure": "on-failure", "none": "no"}[cond]]
        if "entrypoint" in s:
            ep = s["entrypoint"]
            a += ["--entrypoint", json.dumps(ep if isinstance(ep, list) else shlex.split(ep))]
        a.append(s["image"])
        cmd = s.get("command")
        if cmd:
            a += cmd if isinstance(cmd, list) else shlex.split(cmd)
        return a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=str(Path(__file__).resolve().parent.parent / "deploy" / "compose.yml"))
    ap.add_argument("--project", default="confab-stack")
    ap.add_argument("--port-offset", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true", help="print the podman commands only")
    ap.add_argument("action", choices=["services", "ports", "up"])
    ap.add_argument("service", nargs="*")
    o = ap.parse_args()
    st = Stack(o.file, o.project, o.port_offset)
    for svc in o.service:
        if svc not in st.services:
            sys.exit(f"stack-compose: no service {svc} in {o.file}")
    if o.action == "services":
        for svc, s in st.services.items():
            print(svc, s.get("image", ""))
    elif o.action == "ports":
        for svc in o.service:
            for host, target, proto in st.ports(svc):
                print(svc, target, f"127.0.0.1:{host}", proto)
    elif o.action == "up":
        for svc in o.service:
            if o.dry_run:
                st.ensure_network = st.name
                st.ensure_volume = st.name
                print("podman " + shlex.join(st.run_args(svc)))
                continue
            r = podman(*st.run_args(svc), check=False)
            if r.returncode != 0:
                sys.exit(f"stack-compose: {svc} did not start: {r.stderr.strip()}")
            print(f"   {svc}: {st.name(svc)} {r.stdout.strip()[:12]}")


if __name__ == "__main__":
    main()
