#!/usr/bin/env bash
# The project's test command (`make test`, and CI through .ci/run).
#
#   bash scripts/test.sh [pytest args...]
#
# 1. bootstraps .venv (scripts/bootstrap.sh);
# 2. lints: ruff check src tests, and mypy (strict, configured in pyproject.toml);
#    SKIP_LINT=1 skips this for quick local runs;
# 3. finds a PostgreSQL server (scripts/postgres.sh), creates a fresh database for this run
#    and exports PYWORKFLOW_TEST_POSTGRES_URL=<server>/<that database>; the database, and a
#    private cluster if this run started one, are removed on exit;
# 4. runs pytest with the given args. "No tests collected" is a failure: a green run that
#    ran nothing proves nothing.
# Lint errors fail the run, but pytest still runs so that one run reports both.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'test.sh: %s\n' "$*" >&2; }
is_ci() { [[ "${CI:-}" =~ ^([Tt]rue|1|yes)$ ]]; }

bash scripts/bootstrap.sh
py="$repo_root/.venv/bin/python"

# Tests must never see a user's own database; each test passes its own URL.
unset PYWORKFLOW_DATABASE_URL

# --- lint -------------------------------------------------------------------------------

lint_failed=()
if [[ "${SKIP_LINT:-}" == 1 ]]; then
    log "SKIP_LINT=1: skipping ruff and mypy"
else
    log "ruff check src tests"
    "$py" -m ruff check src tests || lint_failed+=("ruff check")
    log "mypy (strict, src/pyworkflow)"
    "$py" -m mypy || lint_failed+=("mypy")
fi

# --- PostgreSQL -------------------------------------------------------------------------

pg_state="${PYWORKFLOW_PG_STATE_DIR:-$repo_root/.pytest-postgres}/cluster.env"
cluster_existed=0
[[ -f "$pg_state" ]] && cluster_existed=1

# Database chores on the server of URL, in python because psycopg comes with the dev extra
# and psql may be missing:
#   create URL NAME   CREATE DATABASE; prints the new database's URL
#   drop URL NAME     DROP DATABASE ... WITH (FORCE)
#   sweep URL         drop the databases of earlier runs that were killed before their
#                     clean-up (name pyworkflow_test_<UTC time>_<pid>[_<suffix>]), if that
#                     pid is gone and the run started over an hour ago; only on a server on
#                     this machine, where the pid means something
database() {
    "$py" - "$@" <<'EOF'
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

action, url, *rest = sys.argv[1:]
parts = urlsplit(url)
# Connect to the database the URL names, else to the maintenance database "postgres".
admin = url if parts.path.strip("/") else parts._replace(path="/postgres").geturl()
drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def run_is_gone(pid: int, started: datetime) -> bool:
    if datetime.now(timezone.utc) - started < timedelta(hours=1):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
    if action == "create":
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(rest[0])))
        print(parts._replace(path="/" + rest[0]).geturl())
    elif action == "drop":
        conn.execute(drop.format(sql.Identifier(rest[0])))
    elif action == "sweep" and parts.hostname in ("127.0.0.1", "localhost", "::1", None):
        pattern = re.compile(r"pyworkflow_test_(\d{14})_(\d+)(_[0-9a-f]+)?")
        for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall():
            match = pattern.fullmatch(name)
            if not match:
                continue
            started = datetime.strptime(match[1], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
            if run_is_gone(int(match[2]), started):
                print(f"test.sh: dropping {name}, left behind by a killed run", file=sys.stderr)
                conn.execute(drop.format(sql.Identifier(name)))
EOF
}

pg_base=""
run_db=""
cleanup() {
    local status=$?
    if [[ -n "$run_db" ]]; then
        database drop "$pg_base" "$run_db" \
            || log "warning: could not drop database $run_db (status ignored)"
    fi
    if [[ "$cluster_existed" == 0 && -f "$pg_state" ]]; then
        bash scripts/postgres.sh stop || log "warning: could not stop the private cluster"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if pg_base="$(bash scripts/postgres.sh)" && [[ -n "$pg_base" ]]; then
    database sweep "$pg_base" || log "warning: could not sweep databases of killed runs"
    run_db="pyworkflow_test_$(date -u +%Y%m%d%H%M%S)_$$"
    export PYWORKFLOW_TEST_POSTGRES_URL
    PYWORKFLOW_TEST_POSTGRES_URL="$(database create "$pg_base" "$run_db")" || {
        log "error: could not create database $run_db on $pg_base"
        run_db=""
        exit 1
    }
    log "PostgreSQL tests use $PYWORKFLOW_TEST_POSTGRES_URL"
else
    unset PYWORKFLOW_TEST_POSTGRES_URL
    if is_ci; then
        log "error: no PostgreSQL server could be found or started (see above);" \
            "CI must run the PostgreSQL tests"
        exit 1
    fi
    log "warning: no PostgreSQL server (see above); tests marked postgres will be skipped"
fi

# Redis is not used by PyWorkflow: nothing to start for it.

# --- pytest -----------------------------------------------------------------------------

pytest=("$py" -m pytest -q -p no:cacheprovider)
if is_ci; then
    # CI kills a run at 90 minutes without a word. Interrupting pytest a little earlier
    # makes it print its failures and its summary line; --durations shows what was slow.
    pytest=(timeout --signal=INT --kill-after=60 "${PYWORKFLOW_CI_PYTEST_TIMEOUT:-4800}"
        "${pytest[@]}" --durations=15)
fi

set +e
"${pytest[@]}" "$@"
status=$?
set -e

if is_ci && [[ "$status" == 124 || "$status" == 137 ]]; then
    log "error: pytest ran out of its ${PYWORKFLOW_CI_PYTEST_TIMEOUT:-4800}s CI budget"
    status=1
fi

if [[ "$status" == 5 ]]; then
    log "error: pytest collected no tests (exit 5); a run that tests nothing is a failure"
    status=1
fi
if [[ "${#lint_failed[@]}" -gt 0 ]]; then
    log "error: lint failed: $(IFS=,; echo "${lint_failed[*]}") (SKIP_LINT=1 skips lint locally)"
    [[ "$status" == 0 ]] && status=1
fi
exit "$status"
