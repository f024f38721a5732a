#!/usr/bin/env python3
"""The import graph of the core crate (shared/src) and the direction of its layers.

One node per module (`protocol`, `adapters::dynamodb`, `edge::json`, ...), from every `crate::`
and `super::` path outside test modules. Fails (exit 1) on:
- a cycle;
- an arrow against the declared layers (LAYERS below): a module may use modules of its own
  layer or of a lower one, except that the adapters never use the domain (they implement the
  ports the domain needs; the domain never uses them either);
- a production module using a test-only module (`adapters::memory`, `adapters::local_signer`,
  `adapters::instrument`);
- a module that is in no layer (a new module must be placed).

    scripts/layers.py           prints the graph, checks it
    scripts/layers.py --doc     also checks that docs/ARCHITECTURE.md shows this very graph
    scripts/layers.py --write   rewrites that part of docs/ARCHITECTURE.md
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "shared" / "src"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- layers.py: begin -->", "<!-- layers.py: end -->"
TEST_ONLY = {"adapters::memory", "adapters::local_signer", "adapters::instrument"}
# Modules whose children are separate nodes.
SPLIT = {"adapters", "edge"}

# The layers, lowest first. A node is placed by its name, or by its parent (`adapters::*`).
LAYERS = [
    ("base", {"secret", "error", "model", "audit"}),
    ("protocol", {"protocol"}),
    ("ports", {"ports"}),
    ("domain", {"settings", "redirect", "region", "stage", "agent", "admin", "facts", "minter", "compliance", "assertion", "signals", "ssf", "delivery", "egress", "idp", "oidc", "health"}),
    ("adapters", {"adapters"}),
    ("edge", {"edge"}),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
# Pairs of layers that must never meet, in either direction, although one is lower.
APART = {("adapters", "domain")}


def layer_of(node):
    top = node.split("::")[0]
    for name, members in LAYERS:
        if node in members or top in members:
            return name
    return None


def node_of_file(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p not in ("mod", "lib")]
    if not parts:
        return None
    if parts[0] in SPLIT and len(parts) > 1:
        return f"{parts[0]}::{parts[1]}"
    return parts[0]


def node_of_path(path):
    parts = path.split("::")
    if parts[0] in SPLIT and len(parts) > 1 and parts[1][:1].islower():
        return f"{parts[0]}::{parts[1]}"
    return parts[0]


def without_tests(text):
    # Drop `#[cfg(test)] mod tests { ... }` blocks (they sit at the end of a file here).
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


def graph():
    edges = {}
    for path in sorted(SRC.rglob("*.rs")):
        node = node_of_file(path)
        if node is None:
            continue
        text = without_tests(path.read_text())
        deps = edges.setdefault(node, set())
        for use in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
            for item in re.split(r",\s*", use):
                item = item.strip()
                if item:
                    deps.add(node_of_path(item))
        for p in re.findall(r"crate::([a-z_]+(?:::[a-z_]+)?)", text):
            deps.add(node_of_path(p))
        parent = node.split("::")[0]
        if parent in SPLIT:
            for p in re.findall(r"super::([a-z_]+)", text):
                # In a split module's own folder (`adapters/dynamodb/x.rs`), `super::` is that
                # module itself; in its direct child file, a sibling module.
                if path.parent.name == parent:
                    deps.add(f"{parent}::{p}")
        deps.discard(node)
        deps.discard(node.split("::")[0])
    return edges


def cycles(edges):
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m in edges and not state.get(m):
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if not state.get(n):
            visit(n)
    return found


def violations(edges):
    errors = [" -> ".join(c) for c in cycles(edges)]
    for n, deps in sorted(edges.items()):
        ln = layer_of(n)
        if ln is None:
            errors.append(f"{n} is in no layer (add it to LAYERS in scripts/layers.py)")
            continue
        for d in sorted(deps):
            if d not in edges:
                continue
            ld = layer_of(d)
            if ld is None:
                continue
            if RANK[ld] > RANK[ln]:
                errors.append(f"{n} ({ln}) uses {d} ({ld}), a higher layer")
            if (ln, ld) in APART or (ld, ln) in APART:
                errors.append(f"{n} ({ln}) uses {d} ({ld}): these layers never meet")
            if n not in TEST_ONLY and d in TEST_ONLY:
                errors.append(f"{n} (production) depends on {d} (test-only)")
    return errors


def rendered(edges):
    lines = []
    for name, _ in LAYERS:
        nodes = sorted(n for n in edges if layer_of(n) == name)
        lines.append(f"[{name}]")
        for n in nodes:
            deps = sorted(d for d in edges[n] if d in edges)
            lines.append(f"  {n} -> {', '.join(deps) or '(nothing)'}")
    return "\n".join(lines)


def main():
    edges = graph()
    text = rendered(edges)
    print(text)
    errors = violations(edges)
    block = f"{BEGIN}\n```\n{text}\n```\n{END}"
    if "--write" in sys.argv:
        doc = DOC.read_text()
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
        DOC.write_text(doc)
    elif "--doc" in sys.argv and block not in DOC.read_text():
        errors.append(f"{DOC.relative_to(ROOT)} does not show the current graph: run scripts/layers.py --write")
    sys.stdout.flush()
    for e in errors:
        print(f"layers: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
