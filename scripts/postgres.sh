#!/usr/bin/env bash
# Make a PostgreSQL server reachable for the tests and print its base URL
# (postgresql://user@host:port, no database) on stdout. Everything else goes to stderr.
#
#   scripts/postgres.sh [start]   print the URL, starting a private cluster if needed
#   scripts/postgres.sh stop      stop the private cluster this script started, if any
#
# How the server is chosen, first match wins:
#   1. $PYWORKFLOW_TEST_POSTGRES_URL, if it accepts a connection from a role that may
#      create databases (the tests create one per run and one per test).
#   2. A private cluster this script started earlier and that still runs.
#   3. A server on 127.0.0.1:$PYWORKFLOW_PG_PROBE_PORT (default 5432), as role postgres,
#      else as root, with trust auth.
#   4. A private throwaway cluster: initdb into a temp dir, trust auth, 127.0.0.1 only, on
#      the probe port if free, else the first free port from 55432. When the PostgreSQL
#      binaries are missing and we are root with apt-get, Debian's postgresql is installed
#      first. Its data dir and pid are recorded in $PYWORKFLOW_PG_STATE_DIR (default
#      .pytest-postgres/ in the repo) so that `stop` stops exactly that cluster.
# If none works, the reason goes to stderr, stdout stays empty, and the exit status is 1.
#
# Other knobs: PYWORKFLOW_PG_NO_INSTALL=1 never runs apt-get.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${PYWORKFLOW_PG_STATE_DIR:-$repo_root/.pytest-postgres}"
state_file="$state_dir/cluster.env"
probe_port="${PYWORKFLOW_PG_PROBE_PORT:-5432}"
host=127.0.0.1

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- connecting -------------------------------------------------------------------------

python_with_psycopg() {
    local py
    for py in "$repo_root/.venv/bin/python" python3; do
        if have "$py" && "$py" -c 'import psycopg' >/dev/null 2>&1; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    return 1
}

# Succeeds when URL accepts a connection from a role that may create databases.
# A URL without a database falls back to PGDATABASE=postgres (libpq reads it for any
# parameter the URL leaves out), because the default, the user's name, often does not exist.
# psql is asked first, then python with psycopg: either may be missing or broken.
can_create_databases() {
    local url="$1" py
    local sql="select rolsuper or rolcreatedb from pg_roles where rolname = current_user"
    if have psql && [[ "$(PGDATABASE=postgres PGCONNECT_TIMEOUT=5 \
        psql "$url" -XAtqc "$sql" 2>/dev/null)" == t ]]; then
        return 0
    fi
    if py="$(python_with_psycopg)" && [[ "$(PGDATABASE=postgres PGCONNECT_TIMEOUT=5 "$py" -c '
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    print("t" if conn.execute(sys.argv[2]).fetchone()[0] else "f")
' "$url" "$sql" 2>/dev/null)" == t ]]; then
        return 0
    fi
    if ! have psql && ! python_with_psycopg >/dev/null; then
        log "neither psql nor python with psycopg is available to test $url"
    fi
    return 1
}

# Succeeds when something accepts connections on 127.0.0.1:PORT. The raw TCP check covers
# a missing or broken pg_isready; whether it is PostgreSQL is up to can_create_databases.
server_answers() {
    local port="$1"
    if have pg_isready && pg_isready -q -h "$host" -p "$port" -t 3 2>/dev/null; then
        return 0
    fi
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

port_is_free() {
    ! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

# --- the private cluster ---------------------------------------------------------------

find_bindir() {
    local dir
    # Debian keeps initdb and pg_ctl off PATH, one directory per major version.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    if have initdb && have pg_ctl; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

install_postgres() {
    if [[ "${PYWORKFLOW_PG_NO_INSTALL:-}" == 1 ]]; then
        log "PostgreSQL binaries not found and PYWORKFLOW_PG_NO_INSTALL=1"
        return 1
    fi
    if [[ "$(id -u)" != 0 ]] || ! have apt-get; then
        log "PostgreSQL binaries (initdb, pg_ctl) not found, and installing them needs root" \
            "with apt-get; install PostgreSQL or set PYWORKFLOW_TEST_POSTGRES_URL"
        return 1
    fi
    log "installing Debian's postgresql package (apt-get)"
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
    } >&2 || { log "apt-get install postgresql failed"; return 1; }
}

# The user the cluster runs as: initdb and postgres refuse to run as root.
cluster_user() {
    if [[ "$(id -u)" != 0 ]]; then
        id -un
        return
    fi
    if ! getent passwd postgres >/dev/null; then
        log "creating system user postgres"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres >&2
    fi
    printf 'postgres\n'
}

as_user() {
    local user="$1"
    shift
    if [[ "$user" == "$(id -un)" ]]; then
        "$@"
    elif have runuser; then
        runuser -u "$user" -- "$@"
    else
        su "$user" -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

pick_port() {
    local port
    if port_is_free "$probe_port"; then
        printf '%s\n' "$probe_port"
        return 0
    fi
    for port in $(seq 55432 55481); do
        if port_is_free "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    log "no free port among $probe_port and 55432-55481"
    return 1
}

# Prints the pid of the recorded cluster if it is still that cluster's postmaster.
recorded_pid_alive() {
    [[ -f "$state_file" ]] || return 1
    local PG_DATADIR="" PG_PID=""
    # shellcheck disable=SC1090
    source "$state_file"
    [[ -n "$PG_PID" && -r "/proc/$PG_PID/cmdline" ]] || return 1
    # A recycled pid belongs to some other process: only trust it if it runs on our data dir.
    tr '\0' ' ' <"/proc/$PG_PID/cmdline" | grep -qF -- "$PG_DATADIR" || return 1
    printf '%s\n' "$PG_PID"
}

start_private_cluster() {
    local bindir user port tmp datadir pid url
    if ! bindir="$(find_bindir)"; then
        install_postgres || return 1
        bindir="$(find_bindir)" || { log "initdb not found even after installing"; return 1; }
    fi
    user="$(cluster_user)" || return 1
    port="$(pick_port)" || return 1

    # /tmp rather than $TMPDIR: the cluster user must be able to reach it, and the socket
    # path inside it must stay under the 107-byte limit of a unix socket name.
    tmp="$(mktemp -d /tmp/pyworkflow-pg.XXXXXX)"
    datadir="$tmp/data"
    chmod 755 "$tmp"
    chown "$user" "$tmp"
    log "initdb ($bindir) into $datadir as $user"
    if ! as_user "$user" "$bindir/initdb" -D "$datadir" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1; then
        cat "$tmp/initdb.log" >&2
        rm -rf "$tmp"
        log "initdb failed"
        return 1
    fi
    # A throwaway cluster: durability settings off for speed; room for the many
    # connections that per-test DBOS instances open.
    cat >>"$datadir/postgresql.conf" <<EOF

# --- scripts/postgres.sh: private test cluster ---
listen_addresses = '$host'
port = $port
unix_socket_directories = '$tmp'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    log "starting PostgreSQL on $host:$port"
    if ! as_user "$user" "$bindir/pg_ctl" -D "$datadir" -l "$tmp/postgres.log" -w -t 60 \
        start >&2; then
        cat "$tmp/postgres.log" >&2 || true
        rm -rf "$tmp"
        log "pg_ctl start failed"
        return 1
    fi
    pid="$(head -n1 "$datadir/postmaster.pid")"
    url="postgresql://postgres@$host:$port"

    mkdir -p "$state_dir"
    cat >"$state_file" <<EOF
PG_URL='$url'
PG_PORT='$port'
PG_PID='$pid'
PG_TMPDIR='$tmp'
PG_DATADIR='$datadir'
PG_BINDIR='$bindir'
PG_USER='$user'
EOF
    if ! can_create_databases "$url"; then
        log "started a cluster on port $port but cannot connect to it as postgres"
        stop_private_cluster
        return 1
    fi
    printf '%s\n' "$url"
}

stop_private_cluster() {
    if [[ ! -f "$state_file" ]]; then
        log "no private cluster recorded in $state_dir; nothing to stop"
        return 0
    fi
    local PG_URL="" PG_PID="" PG_TMPDIR="" PG_DATADIR="" PG_BINDIR="" PG_USER="" pid
    # shellcheck disable=SC1090
    source "$state_file"
    if pid="$(recorded_pid_alive)"; then
        log "stopping the private cluster on $PG_URL (pid $pid)"
        as_user "$PG_USER" "$PG_BINDIR/pg_ctl" -D "$PG_DATADIR" -m fast -w -t 30 stop >&2 \
            || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [[ -d "/proc/$pid" ]] || break
            sleep 0.1
        done
        if [[ -d "/proc/$pid" ]]; then
            log "pid $pid did not stop; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # Only ever delete the directory this script created.
    if [[ "$PG_TMPDIR" == */pyworkflow-pg.* && -d "$PG_TMPDIR" ]]; then
        rm -rf "$PG_TMPDIR"
    fi
    rm -f "$state_file"
    rmdir "$state_dir" 2>/dev/null || true
}

# --- main -------------------------------------------------------------------------------

start() {
    if [[ -n "${PYWORKFLOW_TEST_POSTGRES_URL:-}" ]]; then
        if can_create_databases "$PYWORKFLOW_TEST_POSTGRES_URL"; then
            log "using PYWORKFLOW_TEST_POSTGRES_URL"
            printf '%s\n' "$PYWORKFLOW_TEST_POSTGRES_URL"
            return 0
        fi
        log "PYWORKFLOW_TEST_POSTGRES_URL is set but does not accept a connection from a" \
            "role that may create databases; looking for another server"
    fi

    if [[ -f "$state_file" ]]; then
        local PG_URL=""
        # shellcheck disable=SC1090
        source "$state_file"
        if recorded_pid_alive >/dev/null && can_create_databases "$PG_URL"; then
            log "reusing the private cluster started earlier ($PG_URL)"
            printf '%s\n' "$PG_URL"
            return 0
        fi
        log "the recorded private cluster is gone; cleaning up its state"
        stop_private_cluster
    fi

    if server_answers "$probe_port"; then
        local user
        for user in postgres root; do
            if can_create_databases "postgresql://$user@$host:$probe_port"; then
                log "using the server on $host:$probe_port as $user"
                printf 'postgresql://%s@%s:%s\n' "$user" "$host" "$probe_port"
                return 0
            fi
        done
        log "a server answers on $host:$probe_port but neither postgres nor root can" \
            "connect and create databases (trust auth?); starting a private cluster instead"
    fi

    start_private_cluster
}

case "${1:-start}" in
    start) start ;;
    stop) stop_private_cluster ;;
    *)
        log "usage: $0 [start|stop]"
        exit 2
        ;;
esac
