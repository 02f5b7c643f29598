#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv and install the package with its
# dev extra. Every other script starts with this, so it must be cheap when nothing changed:
# the install is skipped while .venv/.installed-<sha256 of pyproject.toml> exists.
#
# Environment:
#   PYTHON   interpreter to build the venv with (default: newest python3.x >= 3.10 on PATH)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

venv="$repo_root/.venv"
min_minor=10  # requires-python = ">=3.10"

# Prints "3 11" for an interpreter, or nothing if it does not run.
python_version() {
    "$1" -c 'import sys; print(sys.version_info[0], sys.version_info[1])' 2>/dev/null || true
}

python_ok() {
    local major minor
    read -r major minor <<<"$(python_version "$1")"
    [[ "${major:-0}" == 3 && "${minor:-0}" -ge "$min_minor" ]]
}

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        python_ok "$PYTHON" || die "PYTHON=$PYTHON is not Python >= 3.$min_minor"
        printf '%s\n' "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    local found
    found="$(python_version python3 | tr ' ' .)"
    die "PyWorkflow needs Python >= 3.$min_minor; found ${found:-no python3 on PATH}." \
        "Install python3.11 (Debian: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.x"
}

# Two shells in the same work tree may bootstrap at once; pip installing into one venv
# concurrently corrupts it, so the whole script runs under a lock when flock exists.
if command -v flock >/dev/null 2>&1 && [[ -z "${_PYWORKFLOW_BOOTSTRAP_LOCKED:-}" ]]; then
    export _PYWORKFLOW_BOOTSTRAP_LOCKED=1
    # Locking this script file itself leaves no lock file behind in the work tree.
    exec flock "$repo_root/scripts/bootstrap.sh" bash "${BASH_SOURCE[0]}" "$@"
fi

# A venv copied from another machine, or whose base interpreter was removed, has a
# dangling bin/python: rebuild it instead of failing later with a confusing error.
if [[ -e "$venv" ]] && ! python_ok "$venv/bin/python"; then
    log "existing .venv is unusable (its python does not run or is < 3.$min_minor); recreating it"
    rm -rf "$venv"
fi

if [[ ! -e "$venv" ]]; then
    python="$(pick_python)"
    log "creating .venv with $python ($(python_version "$python" | tr ' ' .))"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        die "'$python -m venv' failed; on Debian install the venv module: apt-get install python3-venv"
    fi
fi

stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ -f "$stamp" ]]; then
    exit 0
fi

# pip's exit status alone decides. Its "Location '...' is ignored: it is neither a file nor
# a directory" warnings, one per package when pip.conf names an index directory that this
# machine lacks, are harmless noise and are filtered out of stderr.
pip_install() {
    "$venv/bin/python" -m pip install --quiet "$@" \
        2> >(grep -v "' is ignored: it is neither a file nor a directory" >&2)
}

log "installing pyworkflow[dev] into .venv (pyproject.toml changed or first run)"
pip_install --upgrade pip \
    || log "warning: could not upgrade pip; continuing with $("$venv/bin/python" -m pip --version)"
pip_install -e ".[dev]" || die "pip install -e '.[dev]' failed (see the messages above)"

rm -f "$venv"/.installed-*
touch "$stamp"
log "done"
