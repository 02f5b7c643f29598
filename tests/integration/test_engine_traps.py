"""The DBOS traps of DESIGN.md §7, exercised with real processes on one shared database.

- §7.4: processes sharing a database each have their own executor id, so one never runs
  another's steps (DBOS's default, "local" for all, made two processes run one step twice);
- §7.3: the application version is pinned, so a run left by a killed process is recovered
  after the code changed;
- §7.4: a process takes over the runs of a process that is gone (its pid no longer exists on
  this host) — and never those of a process that is alive.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_agents import read_ledger

from pyworkflow.engine import APPLICATION_VERSION
from support.processes import INTEGRATION_DIR, Launcher, dbos_table, query, wait_for

pytestmark = pytest.mark.slow

TIMEOUT = 180.0


@pytest.fixture
def launcher(tmp_path: Path, sqlite_url: str) -> Iterator[Launcher]:
    launcher = Launcher(
        tmp_path,
        {
            "PYWORKFLOW_DATABASE_URL": sqlite_url,
            "CRASH_LEDGER": str(tmp_path / "ledger"),
            "CRASH_GATE_DIR": str(tmp_path),
        },
    )
    yield launcher
    launcher.close()


def _report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def _owners(url: str, run_id: str) -> dict[str, str]:
    """Workflow id → executor id, for the run and its step workflows."""
    rows = query(
        url,
        f"SELECT workflow_uuid, executor_id FROM {dbos_table(url, 'workflow_status')} "
        "WHERE workflow_uuid = ? OR workflow_uuid LIKE ?",
        (run_id, f"{run_id}/%"),
    )
    return dict(rows)


def _events_of(url: str, run_id: str, type_: str) -> int:
    rows = query(
        url,
        "SELECT COUNT(*) FROM pyworkflow_events WHERE run_id = ? AND type = ?",
        (run_id, type_),
    )
    return int(rows[0][0]) if rows else 0


def _executors(url: str) -> dict[str, tuple[int, float, float]]:
    rows = query(url, "SELECT executor_id, pid, started_at, last_seen FROM pyworkflow_executors")
    return {executor_id: (pid, started, seen) for executor_id, pid, started, seen in rows}


def test_two_processes_on_one_sqlite_file_never_run_a_step_twice(
    sqlite_url: str, tmp_path: Path, launcher: Launcher
) -> None:
    go = tmp_path / "go"
    first = launcher.main("first", "crash_agents", "run", "first-run", str(tmp_path / "a.json"))
    second = launcher.main(
        "second",
        "crash_agents",
        "run",
        "second-run",
        str(tmp_path / "b.json"),
        env={"CRASH_GO_FILE": str(go)},
    )
    # The second process starts its runtime while the first's runs are pending: with one
    # shared executor id its start-up recovery would claim and re-run them.
    wait_for(
        lambda: _events_of(sqlite_url, "first-run", "AGENT_STEP_COMPLETED") >= 1,
        timeout=TIMEOUT,
        what="the first run's first step",
        watch=[first, second],
    )
    go.touch()
    # Both heartbeat rows, while both processes live (a process that has exited is forgotten
    # by the other's next takeover round).
    executors = wait_for(
        lambda: _executors(sqlite_url) if len(_executors(sqlite_url)) == 2 else None,
        timeout=TIMEOUT,
        what="both processes' heartbeats",
        watch=[first, second],
    )
    first.wait(timeout=TIMEOUT)
    second.wait(timeout=TIMEOUT)
    a, b = _report(tmp_path / "a.json"), _report(tmp_path / "b.json")
    assert a["result"]["status"] == b["result"]["status"] == "completed"
    assert a["result"]["answer"] == b["result"]["answer"]
    # The runs overlapped: the second began before the first finished.
    assert b["began_at"] < a["events"][-1]["timestamp"]

    # Distinct executor ids, in PyWorkflow's table and in the engine's.
    assert a["executor_id"] != b["executor_id"]
    assert {executor_id: pid for executor_id, (pid, _, _) in executors.items()} == {
        a["executor_id"]: first.pid,
        b["executor_id"]: second.pid,
    }
    assert set(_owners(sqlite_url, "first-run").values()) == {a["executor_id"]}
    assert set(_owners(sqlite_url, "second-run").values()) == {b["executor_id"]}
    assert len(_owners(sqlite_url, "first-run")) == len(_owners(sqlite_url, "second-run")) == 12

    # Every tool and model call ran once, each run's in its own process.
    ledger = read_ledger(tmp_path / "ledger")
    counts = Counter((phase, key) for phase, _, key, _ in ledger if "/v" in key)
    assert len(counts) == 2 * 2 * 10  # start and done of 10 tool calls in each of 2 runs
    assert all(n == 1 for n in counts.values()), counts
    for phase, pid, key, _ in ledger:
        if key.startswith("first-run/"):
            assert pid == first.pid, (phase, key)
        elif key.startswith("second-run/"):
            assert pid == second.pid, (phase, key)


def test_a_run_left_by_a_killed_process_resumes_after_its_code_changed(
    sqlite_url: str, tmp_path: Path, launcher: Launcher
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    module = code / "crash_agents.py"
    shutil.copy(INTEGRATION_DIR / "crash_agents.py", module)
    go = tmp_path / "go"
    victim = launcher.main(
        "victim",
        "crash_agents",
        "run",
        "versioned",
        str(tmp_path / "victim.json"),
        pythonpath=[code],
    )
    resumer = launcher.main(
        "resumer",
        "crash_agents",
        "takeover",
        "versioned",
        str(tmp_path / "resumed.json"),
        env={"CRASH_GO_FILE": str(go)},
        pythonpath=[code],
    )
    wait_for(
        lambda: _events_of(sqlite_url, "versioned", "AGENT_STEP_COMPLETED") >= 2,
        timeout=TIMEOUT,
        what="two steps to complete",
        watch=[victim],
    )
    victim.kill()
    left = _owners(sqlite_url, "versioned")
    assert left and len(left) < 12, "the kill should leave the run unfinished"
    # A new release of the code: same behaviour, different source.
    source = module.read_text()
    edited = source.replace(
        "# Seconds each piece of work takes.", "# Seconds each piece of work takes (edited)."
    )
    assert edited != source
    module.write_text(edited + "\n# a comment added by the next release\n")

    go.touch()
    resumer.wait(timeout=TIMEOUT)
    resumed = _report(tmp_path / "resumed.json")
    assert resumed["module"] == str(module)  # the edited copy is the code that resumed the run
    result = resumed["result"]
    assert result["status"] == "completed", result
    steps = {s["label"]: s["result"] for s in result["executed_steps"]}
    assert steps["6"] == "(slow:b)+(slow:c)"
    # 9 steps, step 5 fanned out over 3 elements: each element is its own result.
    assert result["answer"].startswith("answer over 11 results")

    # Every workflow of the run, before and after the change, carries the pinned version.
    versions = query(
        sqlite_url,
        f"SELECT DISTINCT application_version FROM {dbos_table(sqlite_url, 'workflow_status')}",
    )
    assert versions == [(APPLICATION_VERSION,)]


def test_runs_are_taken_over_only_from_a_process_that_is_gone(
    sqlite_url: str, tmp_path: Path, launcher: Launcher
) -> None:
    # Heartbeats never go stale during this test, so a takeover can only come from the pid check.
    launcher.env["PYWORKFLOW_TAKEOVER_AFTER"] = "600"
    owner = launcher.main(
        "owner", "crash_agents", "run", "gated", str(tmp_path / "o.json"), "gated"
    )
    ledger = tmp_path / "ledger"
    wait_for(
        lambda: any(p == "start" for p, _, _, _ in read_ledger(ledger)),
        timeout=TIMEOUT,
        what="the owner to reach the gate",
        watch=[owner],
    )
    # A second process starts (its runtime takes over dead executors at start and then on its
    # heartbeat) while the owner is alive and waiting at the gate.
    out = tmp_path / "w.json"
    watcher = launcher.main("watcher", "crash_agents", "takeover", "gated", str(out))
    watcher_id = wait_for(
        lambda: Path(str(out) + ".ready").exists() and Path(str(out) + ".ready").read_text(),
        timeout=TIMEOUT,
        what="the second runtime to start",
        watch=[owner, watcher],
    )
    owner_id = next(e for e, (pid, _, _) in _executors(sqlite_url).items() if pid == owner.pid)
    # Let its heartbeat run a periodic takeover too: beats every 2 s, a takeover after >4 s;
    # the beat after that one shows the takeover finished.
    wait_for(
        lambda: (row := _executors(sqlite_url).get(watcher_id)) and row[2] - row[1] > 8.5,
        timeout=TIMEOUT,
        what="the second runtime's heartbeats",
        watch=[owner, watcher],
    )
    assert owner_id in _executors(sqlite_url), "a live process's runs were claimed"
    assert set(_owners(sqlite_url, "gated").values()) == {owner_id}
    assert [pid for _, pid, _, _ in read_ledger(ledger)] == [owner.pid]

    owner.kill()
    killed_at = time.monotonic()
    wait_for(
        lambda: owner_id not in _executors(sqlite_url),
        timeout=60,
        what="the dead owner's runs to be taken over",
        watch=[watcher],
    )
    taken_over_after = time.monotonic() - killed_at
    (tmp_path / "open").touch()
    watcher.wait(timeout=TIMEOUT)
    result = _report(out)["result"]
    assert result["status"] == "completed", result
    assert result["answer"] == "passed:open"
    # Taken over well before any heartbeat could go stale (600 s): by the pid check, within
    # about one takeover period of the heartbeat.
    assert taken_over_after < 30
    assert set(_owners(sqlite_url, "gated").values()) == {watcher_id}
    # The gate step was in flight at the kill: it ran again, in the process that took over.
    lines = [(phase, pid) for phase, pid, key, _ in read_ledger(ledger) if key == "gated/v1/1"]
    assert lines == [("start", owner.pid), ("start", watcher.pid), ("done", watcher.pid)]
