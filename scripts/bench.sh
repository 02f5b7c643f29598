#!/usr/bin/env bash
# `make bench`: run every bench/*.py (not the _*.py helpers) with the project's venv, one after
# another, and fail if any of them fails. Each prints Markdown tables (docs/benchmarks.md).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

shopt -s nullglob
benches=(bench/[!_]*.py)
if [[ ${#benches[@]} -eq 0 ]]; then
    echo "no benchmarks yet (bench/*.py)"
    exit 0
fi

bash scripts/bootstrap.sh
failed=()
for bench in "${benches[@]}"; do
    echo "== $bench"
    .venv/bin/python "$bench" || failed+=("$bench")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "bench.sh: failed: ${failed[*]}" >&2
    exit 1
fi
