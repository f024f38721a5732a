#!/usr/bin/env python3
"""Targets marked `test = false` in a Cargo.toml (no unit-test binary is built for them, which
keeps `make test` from compiling and linking a dozen empty test binaries) must really hold no
test: fails if such a target's file, or a module file it declares, has #[test] or
#[tokio::test]. Every library and binary target says `bench = false`: the benchmarks are bench
targets of their own, and without it `--all-targets` (make test's build, for clippy on every
target) builds each library and binary once more in bench mode (11 s of CPU on a fresh clone,
docs/PERFORMANCE.md, 6f). And every integration test target of the workspace (`tests/*.rs`,
`tests/*/main.rs`) is named by scripts/test.sh (a `--test`, or an argument of its
`test_executables`), which runs them by name: a new suite can never be skipped without notice.
Run by `make test`."""
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def files_of(src):
    """The target's file and the module files it declares (`mod x;`), recursively."""
    out, todo = [], [src]
    while todo:
        f = todo.pop()
        if not f.exists():
            continue
        out.append(f)
        base = f.parent if f.name in ("lib.rs", "main.rs", "mod.rs") else f.with_suffix("")
        for m in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", f.read_text(), re.M):
            todo += [base / f"{m}.rs", base / m / "mod.rs"]
    return out


def main():
    errors = []
    for manifest in sorted(ROOT.glob("**/Cargo.toml")):
        if "target" in manifest.parts or ".venv" in manifest.parts:
            continue
        cfg = tomllib.loads(manifest.read_text())
        targets = []
        if "lib" in cfg or (manifest.parent / "src" / "lib.rs").exists():
            targets.append((cfg.get("lib", {}), "src/lib.rs"))
        targets += [(b, "src/main.rs") for b in cfg.get("bin", [])]
        if "package" in cfg and not targets:
            errors.append(f"{manifest.relative_to(ROOT)}: declare its targets ([lib], [[bin]]) to say bench = false")
        for target, default in targets:
            if target.get("bench", True):
                what = f"[[bin]] {target['name']}" if "name" in target and default == "src/main.rs" else "[lib]"
                errors.append(f"{manifest.relative_to(ROOT)}: {what} needs bench = false (it is built again in bench mode by --all-targets)")
            if target.get("test", True):
                continue
            src = manifest.parent / target.get("path", default)
            for f in files_of(src):
                if re.search(r"#\[(tokio::)?test\]", f.read_text()):
                    errors.append(f"{f.relative_to(ROOT)} has tests but its target says test = false ({manifest.relative_to(ROOT)})")
    script = (ROOT / "scripts" / "test.sh").read_text()
    named = set(re.findall(r"--test (\w+)", script))
    for args in re.findall(r"test_executables((?: [\w-]+)+)", script):
        named |= {a for a in args.split() if not a.startswith("-")}
    for manifest in sorted(ROOT.glob("**/Cargo.toml")):
        if "target" in manifest.parts or ".venv" in manifest.parts:
            continue
        tests = manifest.parent / "tests"
        found = {f.stem for f in tests.glob("*.rs")} | {d.name for d in tests.glob("*/") if (d / "main.rs").exists()}
        for t in sorted(found - named):
            errors.append(f"{manifest.parent.relative_to(ROOT)}/tests: the suite {t} is not run by scripts/test.sh (add --test {t})")
    for e in errors:
        print(f"check-test-targets: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
