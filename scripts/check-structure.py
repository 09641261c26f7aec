#!/usr/bin/env python3
"""The shape of the tree, checked (part of `make lint`):

1. Crates point one way. Every workspace crate sits in one layer of LAYERS;
   its normal and build dependencies on workspace crates must all be in
   lower layers (dev-dependencies are free: tests may use anything).
2. No import circles inside a crate. Each source file under a crate's src/
   is a node; a file that names an item of another file's module (`use
   crate::a::b`, an inline `crate::a::b::f()`, `super::x`, a child module's
   `child::f`) points at it. A strongly connected group of two or more files
   is a circle and fails the check. The crate roots (lib.rs, main.rs) only
   declare modules and re-export, so they are left out; a name re-exported
   at the root counts as the file that defines it. `#[cfg(test)]` modules
   are left out.

Usage: scripts/check-structure.py [--verbose]   (exit 1 on a violation)
"""

import json
import os
import re
import subprocess
import sys

# Bottom to top. A crate may depend only on crates of lower layers.
LAYERS = [
    # The wire schema, process plumbing, transport security.
    ["confab-proto", "confab-common", "confab-tls"],
    # How to reach a peer; the router's key space and routing errors; the
    # test kit (dev-dependency of services, a library of confab-chaos).
    ["confab-net", "confab-route", "confab-testkit"],
    # Clients of the services; the message queue; the router's replicated
    # types and their codec.
    ["confab-router-client", "confab-queue", "confab-client", "confab-router-state"],
    # The services.
    ["confab-router", "confab-persist", "confab-gateway"],
    # Tools.
    ["confabctl", "confab-bench", "confab-chat", "confab-chaos"],
]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def workspace():
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["packages"]


def check_layers(packages):
    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    names = {p["name"] for p in packages}
    errors = []
    for p in packages:
        if p["name"] not in layer_of:
            errors.append(f"{p['name']}: not in any layer of scripts/check-structure.py")
            continue
        for dep in p["dependencies"]:
            if dep["name"] not in names or dep.get("kind") == "dev":
                continue
            if dep["name"] not in layer_of:
                continue
            if layer_of[dep["name"]] >= layer_of[p["name"]]:
                errors.append(
                    f"{p['name']} (layer {layer_of[p['name']]}) depends on "
                    f"{dep['name']} (layer {layer_of[dep['name']]}): not below it"
                )
    return errors


def strip(text):
    """Source without test modules, comments and string contents."""
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\(\w+\))?\s+)?mod\s+" + IDENT + r"\s*\{", text)
    if m:
        text = text[: m.start()]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    text = re.sub(r"//[^\n]*", "", text)
    return text


def module_files(src_root):
    """{module path tuple: file} for every .rs file below src_root."""
    files = {}
    for dirpath, _, filenames in os.walk(src_root):
        for f in filenames:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src_root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            if parts and parts[0] == "bin":
                continue
            files.setdefault(tuple(parts), os.path.join(dirpath, f))
    return files


def use_paths(text, public=None):
    """Every path a `use` statement names, braces expanded. public=True:
    only re-exports (`pub use`); False: only the others; None: all."""
    paths = []
    for vis, stmt in re.findall(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
        if public is not None and bool(vis) != public:
            continue
        paths.extend(expand(re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", stmt))))
    return paths


def expand(tree):
    """'a::{b,c::{d,e}}' -> ['a::b', 'a::c::d', 'a::c::e'] ('x@y' is `x as y`)."""
    i = tree.find("{")
    if i < 0:
        return [re.sub(r"@" + IDENT + "$", "", tree)] if tree else []
    prefix, body = tree[:i], tree[i + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for part in parts:
        for sub in expand(part):
            out.append(prefix + sub if sub != "self" else prefix.rstrip(":"))
    return out


def absolute(segs, here):
    """A path's segments from the crate root; None for another crate's."""
    if not segs:
        return None
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("super", "self"):
        base = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        return base + segs
    return None


def resolve(segments, files, reexports, depth=0):
    """(file module, item name) a path names: its longest prefix that is a
    module, followed through that module's re-exports (`pub use`) to the
    module that defines the item."""
    for n in range(len(segments), -1, -1):
        mod = tuple(segments[:n])
        if mod not in files:
            continue
        name = segments[n] if n < len(segments) else (segments[-1] if segments else "")
        target = reexports.get(mod, {}).get(name) if n < len(segments) else None
        if target is not None and depth < 8:
            return resolve(target, files, reexports, depth + 1)
        return mod, name
    return None


def crate_graph(src_root):
    files = module_files(src_root)
    texts = {m: strip(open(f, encoding="utf-8").read()) for m, f in files.items()}
    # What each module re-exports: `pub use a::b::{X, Y}` -> X, Y are a::b's.
    reexports = {}
    for mod, text in texts.items():
        for path in use_paths(text, public=True):
            segs = [s for s in path.split("::") if s]
            if segs and segs[0] not in ("crate", "super", "self") and mod == ():
                segs = ["self"] + segs
            full = absolute(segs, mod)
            if full:
                reexports.setdefault(mod, {})[full[-1]] = full
    edges = {}
    for mod, text in texts.items():
        if mod == ():
            continue
        # Paths the file's code names: its `use`s (not its re-exports),
        # inline crate/super/self paths, and its own `mod x;` children named
        # as `x::...`.
        refs = use_paths(text, public=False)
        text = re.sub(r"\bpub(\([^)]*\))?\s+use\s+[^;]+;", "", text)
        refs += re.findall(r"\b((?:crate|super|self)(?:::" + IDENT + r")+)", text)
        for child in re.findall(r"\bmod\s+(" + IDENT + r")\s*;", text):
            pattern = r"(?<!::)\b(" + child + r"(?:::" + IDENT + r")+)"
            refs += [f"self::{m}" for m in re.findall(pattern, text)]
        for ref in refs:
            segs = absolute([s for s in ref.split("::") if s], mod)
            if not segs:
                continue
            found = resolve(segs, files, reexports)
            if found is None:
                continue
            target, name = found
            if target == mod or target == ():
                continue
            edges.setdefault(mod, {}).setdefault(target, set()).add(name)
    return files, edges


def circles(nodes, edges):
    """Tarjan's strongly connected components of two or more nodes."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    verbose = "--verbose" in sys.argv
    packages = workspace()
    errors = check_layers(packages)
    for p in sorted(packages, key=lambda p: p["name"]):
        roots = {
            os.path.dirname(t["src_path"])
            for t in p["targets"]
            if set(t["kind"]) & {"lib", "bin"} and "/src/" in t["src_path"]
        }
        for src_root in sorted(roots):
            files, edges = crate_graph(src_root)
            rel = lambda m: os.path.relpath(files[m])
            for comp in circles(files, edges):
                lines = [f"{p['name']}: import circle of {len(comp)} files:"]
                for a in comp:
                    for b in comp:
                        if b in edges.get(a, {}):
                            names = ", ".join(sorted(edges[a][b]))
                            lines.append(f"    {rel(a)} -> {rel(b)}: {names}")
                errors.append("\n".join(lines))
            if verbose:
                n = sum(len(t) for t in edges.values())
                print(f"{p['name']}: {len(files)} files, {n} import edges")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    print(f"structure: {len(packages)} crates in {len(LAYERS)} layers point down; no import circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
