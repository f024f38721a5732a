#!/usr/bin/env bash
# Make sure the repo-local Python venv (./.venv) exists and holds scripts/requirements.txt
# (`scripts/venv.sh all`: and scripts/requirements-extra.txt, the long suites' and release
# builds' tools). Idempotent and quick when nothing changed: a stamp file per list remembers
# its hash.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
lists=(requirements)
case "${1:-}" in
  "") ;;
  all) lists+=(requirements-extra) ;;
  *) echo "usage: $0 [all]" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
for list in "${lists[@]}"; do
  req="$root/scripts/$list.txt"
  stamp="$venv/.$list.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    continue
  fi
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || { echo "venv.sh: $python not found; install Python 3.9+" >&2; exit 1; }
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  fi
  echo "venv.sh: installing $(grep -cv '^\s*#' "$req") requirement line(s) of $list.txt into .venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
done
