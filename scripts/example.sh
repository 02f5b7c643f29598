#!/usr/bin/env bash
# The README's first run (`make example`): the research agent example, end to end, on the
# embedded SQLite default and with no API key needed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

example="examples/research_agent.py"
if [[ ! -f "$example" ]]; then
    printf 'example.sh: error: %s does not exist yet; nothing to run\n' "$example" >&2
    exit 1
fi

bash scripts/bootstrap.sh
# Unset so the example uses its embedded SQLite default, whatever the caller's shell has.
unset PYWORKFLOW_DATABASE_URL
exec .venv/bin/python "$example" "$@"
