#!/usr/bin/env bash
# Response validation, ours vs the reference algorithm (PyJWT), same inputs, same machine, same
# run. Prints both per-operation costs and their ratio. `make bench-reference`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/venv.sh
mkdir -p target/bench
cargo build -q --release -p endpoint-bench --bin validate-bench
ours="$(target/release/validate-bench target/bench/inputs.json "${OURS_ITERATIONS:-200000}")"
reference="$(.venv/bin/python bench/reference_validation.py target/bench/inputs.json "${REFERENCE_ITERATIONS:-20000}")"
o="${ours#*=}"; r="${reference#*=}"
echo "machine: $(nproc) cores, $(uname -m), $(python3 --version 2>&1), PyJWT $(.venv/bin/python -c 'import jwt; print(jwt.__version__)'); $(date -u +%F)"
echo "reference (PyJWT): ${r} us per response"
echo "ours (endpoint-core): ${o} us per response"
awk -v r="$r" -v o="$o" 'BEGIN { printf "ratio: ours is %.1fx cheaper\n", r / o }'
