"""A run seen and joined from another process while it executes in the first.

`get_events(run_id)` and `get_run(run_id).wait()` work from any process sharing the database,
without that process becoming a worker; `run(query, run_id=X)` from a second process while the
first still runs X joins that run — same result, nothing executed twice (DESIGN.md §1, §6).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_agents import read_ledger

from support.processes import Launcher, dbos_table, query, wait_for

pytestmark = pytest.mark.slow

TIMEOUT = 180.0
FINAL = ("AGENT_COMPLETED", "AGENT_FAILED")


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path, {"CRASH_LEDGER": str(tmp_path / "ledger")})
    yield launcher
    launcher.close()


def _completed_steps(url: str, run_id: str) -> int:
    rows = query(
        url,
        "SELECT COUNT(*) FROM pyworkflow_events WHERE run_id = ? AND type = ?",
        (run_id, "AGENT_STEP_COMPLETED"),
    )
    return int(rows[0][0]) if rows else 0


def _report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def test_events_and_result_are_readable_from_another_process_while_the_run_goes(
    sqlite_url: str, tmp_path: Path, launcher: Launcher
) -> None:
    launcher.env["PYWORKFLOW_DATABASE_URL"] = sqlite_url
    runner = launcher.main("runner", "crash_agents", "run", "seen", str(tmp_path / "runner.json"))
    watcher = launcher.main(
        "watcher", "crash_agents", "watch", "seen", str(tmp_path / "watcher.json")
    )
    runner.wait(timeout=TIMEOUT)
    watcher.wait(timeout=TIMEOUT)
    ran, watched = _report(tmp_path / "runner.json"), _report(tmp_path / "watcher.json")

    # The watcher saw the log grow while the run went on, each read a prefix of the final log.
    final = [[e["seq"], e["type"]] for e in ran["events"]]
    assert final[-1][1] == "AGENT_COMPLETED"
    snapshots = watched["snapshots"]
    assert all(snapshot == final[: len(snapshot)] for snapshot in snapshots)
    partial = {len(s) for s in snapshots if 0 < len(s) < len(final)}
    assert len(partial) >= 3, f"the watcher should see the run in progress: {sorted(partial)}"
    assert snapshots[-1] == final

    # `get_run(run_id).wait()` there returns what `run()` returned here.
    assert watched["result"] == ran["result"]
    assert watched["result"]["status"] == "completed"
    assert watched["events"] == ran["events"]
    # Reading made the watcher no worker: it never started a runtime or joined the executors.
    assert watched["executor_id"] is None
    executors = query(sqlite_url, "SELECT executor_id, pid FROM pyworkflow_executors")
    assert [pid for _, pid in executors] == [runner.pid]


def test_run_with_the_same_id_from_a_second_process_joins_the_running_run(
    database_url: str, tmp_path: Path, launcher: Launcher
) -> None:
    launcher.env["PYWORKFLOW_DATABASE_URL"] = database_url
    go = tmp_path / "go"
    first = launcher.main("first", "crash_agents", "run", "joined", str(tmp_path / "first.json"))
    second = launcher.main(
        "second",
        "crash_agents",
        "run",
        "joined",
        str(tmp_path / "second.json"),
        env={"CRASH_GO_FILE": str(go)},
    )
    # The second caller arrives mid-run: some steps done, the longest fan-out element not yet.
    wait_for(
        lambda: _completed_steps(database_url, "joined") >= 2,
        timeout=TIMEOUT,
        what="the first steps to complete",
        watch=[first, second],
    )
    go.touch()
    first.wait(timeout=TIMEOUT)
    second.wait(timeout=TIMEOUT)
    one, two = _report(tmp_path / "first.json"), _report(tmp_path / "second.json")
    assert _completed_steps(database_url, "joined") == 11
    # The second caller came while the run was going, and started a runtime of its own.
    assert two["began_at"] < one["events"][-1]["timestamp"]
    assert two["executor_id"] is not None

    assert one["result"]["status"] == "completed"
    assert two["result"] == one["result"]
    assert two["events"] == one["events"]

    # Nothing ran twice, and everything ran in the first process.
    ledger = read_ledger(tmp_path / "ledger")
    assert ledger, "the tools should have written the ledger"
    counts = Counter((phase, key) for phase, _, key, _ in ledger)
    assert all(n == 1 for n in counts.values()), counts
    assert {pid for _, pid, _, _ in ledger} == {first.pid}

    # Two processes, two executor ids; every workflow of the run belongs to the first.
    assert one["executor_id"] != two["executor_id"]
    owners = query(
        database_url,
        f"SELECT DISTINCT executor_id FROM {dbos_table(database_url, 'workflow_status')} "
        "WHERE workflow_uuid = ? OR workflow_uuid LIKE ?",
        ("joined", "joined/%"),
    )
    assert owners == [(one["executor_id"],)]
