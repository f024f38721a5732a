#!/usr/bin/env python3
"""Docs that cannot go stale: every test and repository path the docs cite exists (make test).

Reads README.md and docs/*.md. In each `code span`:
- a repository path (`shared/src/ssf.rs`, `tests/browser/`, `scripts/test.*`) must exist;
- a citation `a::b::c` whose first part is not an outside crate must name this repository's
  code: its last part a test function, a definition (fn, type, module) (Rust `#[test]`, `#[tokio::test]`, proptest; Python
  `test_*`), a prefix of test names with `*`, or a module, and every part before it the file,
  folder, inline module, test target or crate where that test lives. `stage_rules::x` fails
  when no file, folder or module `stage_rules` holds a test `x`.
And anywhere (docs, code comments, scripts, the Makefile, the template), a section named in
another document, `docs/OPERATING.md`, "Edge protection", must be one of its headings.
Exits 1 listing every stale citation."""
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
files = [f for f in subprocess.run(["git", "ls-files", "-co", "--exclude-standard"],
                                   capture_output=True, text=True, check=True).stdout.split()
         if os.path.exists(f)]
dirs = set()
for f in files:
    d = os.path.dirname(f)
    while d:
        dirs.add(d)
        d = os.path.dirname(d)

# Test targets and crates by folder: `[[test]] name = "aws"` with `path = "tests/aws/main.rs"`.
target_of = {}
crates = {}
for f in files:
    if os.path.basename(f) == "Cargo.toml":
        text = open(f, encoding="utf-8").read()
        base = os.path.dirname(f)
        pkg = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([\w-]+)"', text, re.M | re.S)
        if pkg:
            crates[base] = pkg.group(1)
        for block in re.findall(r"^\[\[test\]\](.*?)(?=^\[|\Z)", text, re.M | re.S):
            name = re.search(r'^name\s*=\s*"([\w-]+)"', block, re.M)
            path = re.search(r'^path\s*=\s*"([^"]+)"', block, re.M)
            if name and path:
                target_of[os.path.normpath(os.path.join(base, os.path.dirname(path.group(1))))] = name.group(1)

outside = set()
if os.path.exists("Cargo.lock"):
    outside = {n.replace("-", "_") for n in re.findall(r'^name = "([\w-]+)"', open("Cargo.lock").read(), re.M)}


def norm(s):
    return s.replace("-", "_")


# Each test function with the names of the places it lives in.
tests = []  # (name, set of place names)
code = []  # every definition (fn, type, module...), likewise: docs cite code too
places = []  # sets of place names of every source file (for `module::tests`, `suite::*`)
for f in files:
    if not f.endswith((".rs", ".py")):
        continue
    text = open(f, encoding="utf-8").read()
    where = {norm(os.path.splitext(os.path.basename(f))[0])}
    d = os.path.dirname(f)
    while d:
        where.add(norm(os.path.basename(d)))
        if d in target_of:
            where.add(norm(target_of[d]))
        if d in crates:
            where.add(norm(crates[d]))
            where.add(norm(crates[d]).replace("endpoint_", "").replace("fn_", ""))
        d = os.path.dirname(d)
    where.update(re.findall(r"\bmod\s+(\w+)", text))
    places.append(where)
    if f.endswith(".rs"):
        found = re.findall(r"#\[(?:tokio::)?test[^\]]*\]\s*(?:#\[[^\]]*\]\s*)*(?:pub\s+)?(?:async\s+)?fn\s+(\w+)", text)
        for block in re.finditer(r"proptest!\s*\{(.*?)\n\s*\}\s*$", text, re.S | re.M):
            found += re.findall(r"\bfn\s+(\w+)\s*\(", block.group(1))
    else:
        found = re.findall(r"^\s*(?:async\s+)?def\s+(test_\w+)", text, re.M)
    tests += [(t, where) for t in found]
    code += [(d, where) for d in re.findall(r"\b(?:fn|struct|enum|mod|const|trait|type|class|def)\s+(\w+)", text)]

PATH = re.compile(r"^(?:shared|functions|cli|tests|scripts|docs|bench|deploy|events|examples|\.ci)/[\w./*-]*$")
CITE = re.compile(r"^[a-z_][\w-]*(?:::[A-Za-z_*][\w*]*)+$")


def path_exists(p):
    p = p.rstrip("/")
    if "*" in p:
        rx = re.compile("^" + re.escape(p).replace(r"\*", "[^/]*") + "($|/)")
        return any(rx.match(f) for f in files)
    return p in dirs or os.path.exists(p)


def citation_ok(cite):
    # Types and variants on the way (`protocol::response::Invalid::class`) are not places.
    *mods, last = [norm(p) for p in cite.split("::")]
    mods = [m for m in mods if not m[:1].isupper()] or mods
    if mods[0] in outside and not any(mods[0] in w for w in places):
        return True  # an outside crate's item (`jsonwebtoken::decode_header`)
    if last[:1].isupper():
        return True  # a type or variant, not a test
    rx = re.compile("^" + re.escape(last).replace(r"\*", r"\w*") + "$")
    if any(rx.match(t) and set(mods) <= w for t, w in tests):
        return True
    # `module::tests`, `suite::*`, `e2e::aws_calls`: a place holding tests.
    if any(set(mods) | ({last} if last != "*" else set()) <= w for t, w in tests):
        return True
    # Code: `edge::errors::error_class`, `model::reenrollment`.
    return any(rx.match(d) and set(mods) <= w for d, w in code)


stale = []
docs = ["README.md"] + sorted(f for f in files if f.startswith("docs/") and f.endswith(".md"))
for doc in docs:
    for n, line in enumerate(open(doc, encoding="utf-8"), 1):
        for span in re.findall(r"`([^`\n]+)`", line):
            s = span.strip()
            if PATH.match(s):
                if not path_exists(s):
                    stale.append(f"{doc}:{n}: path `{s}` does not exist")
            elif CITE.match(s) and not citation_ok(s):
                stale.append(f"{doc}:{n}: `{s}` names no test of this repository")
# Sections named across files: `docs/OPERATING.md`, "Edge protection" (in the docs, and in the
# comments of code, scripts, the Makefile and the template) must be a heading of that file.
SECTION = re.compile(r'(?<![\w/.])`?((?:docs/)?[A-Z][A-Z_]*\.md)`?,? "([^"\n]+)"')
headings = {}
for f in files:
    if not f.endswith((".md", ".rs", ".py", ".sh", ".yaml", ".toml")) and os.path.basename(f) != "Makefile":
        continue
    if f.startswith(("target/", ".venv/")) or f == "CHANGELOG.md":
        continue  # the changelog records history: a section may have moved since
    for n, line in enumerate(open(f, encoding="utf-8", errors="replace"), 1):
        for doc, title in SECTION.findall(line):
            if doc not in headings:
                if not os.path.exists(doc):
                    stale.append(f"{f}:{n}: `{doc}` does not exist")
                    continue
                headings[doc] = [re.sub(r"^\d+\w?\.\s+", "", h.strip())  # "7. Abuse: ..." is "Abuse"
                                for h in re.findall(r"^#+\s+(.*)$", open(doc, encoding="utf-8").read(), re.M)]
            if not any(h.startswith(title) for h in headings[doc]):
                stale.append(f'{f}:{n}: `{doc}` has no section "{title}"')

if stale:
    print("\n".join(stale))
    print(f"check-doc-refs: {len(stale)} stale citation(s) in the docs (fix the doc, or the name)")
    sys.exit(1)
print(f"check-doc-refs: every path and test cited in {len(docs)} documents exists")
