#!/usr/bin/env bash
# Make sure the repo-local Python venv (./.venv) exists and holds scripts/requirements.txt and
# scripts/requirements-nodeps.txt (`scripts/venv.sh all`: and scripts/requirements-extra.txt, the
# long suites' and release builds' tools). Idempotent and quick when nothing changed: a stamp
# file per list remembers its hash.
#
# The installer is uv (from PyPI, into the venv itself): a fresh clone's install takes about
# 18 s and 21 s of CPU where pip took 64 s and 49 s, and it runs beside the first compile.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
uv_version=0.13.9
lists=(requirements requirements-nodeps)
case "${1:-}" in
  "") ;;
  all) lists+=(requirements-extra) ;;
  *) echo "usage: $0 [all]" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/uv" ]; then
  command -v "$python" >/dev/null || { echo "venv.sh: $python not found; install Python 3.9+" >&2; exit 1; }
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version" >&2
fi
for list in "${lists[@]}"; do
  req="$root/scripts/$list.txt"
  stamp="$venv/.$list.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    continue
  fi
  echo "venv.sh: installing $(grep -cv '^\s*#' "$req") requirement line(s) of $list.txt into .venv" >&2
  flags=()
  # These packages come without their dependencies (the file says why).
  [ "$list" = requirements-nodeps ] && flags+=(--no-deps)
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" "${flags[@]}" -r "$req" >&2
  echo "$want" > "$stamp"
done
