#!/usr/bin/env python3
"""The import graph of the core crate (shared/src), one node per module (`protocol`,
`adapters::dynamodb`, `edge`, ...), from every `crate::` path in the code outside test
modules. Prints the graph and exits 1 if it has a cycle, or if a production module depends on
a test-only adapter (`adapters::memory`, `adapters::local_signer`). `make lint` runs it."""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "shared" / "src"
TEST_ONLY = {"adapters::memory", "adapters::local_signer"}
# Modules whose children are separate nodes.
SPLIT = {"adapters", "edge"}


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
        for p in re.findall(r"super::([a-z_]+)", text):
            parent = node.split("::")[0]
            if parent in SPLIT:
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


def main():
    edges = graph()
    for n in sorted(edges):
        print(f"{n} -> {', '.join(sorted(d for d in edges[n] if d in edges)) or '(nothing)'}")
    errors = [" -> ".join(c) for c in cycles(edges)]
    for n, deps in edges.items():
        if n not in TEST_ONLY:
            for d in deps & TEST_ONLY:
                errors.append(f"{n} (production) depends on {d} (test-only)")
    sys.stdout.flush()
    for e in errors:
        print(f"layers: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
