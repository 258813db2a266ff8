#!/usr/bin/env bash
# Instructions per call of the guard chain (bench/pipeline_cost.py --fixed), under callgrind:
# (Ir of 50 + N calls - Ir of 50 calls) / N. Usage: bench/pipeline_instructions.sh [N] (default 300).
set -euo pipefail
calls="${1:-300}"
python="${PYTHON:-.venv/bin/python}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
total() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" "$python" -m bench.pipeline_cost --fixed "$1" \
        2>"$out/log.$1" >/dev/null
    sed -n 's/^summary: //p' "$out/cg.$1"
}
base="$(total 0)"
with="$(total "$calls")"
echo "instructions/call: $(( (with - base) / calls )) (Ir $with - $base over $calls calls)"
