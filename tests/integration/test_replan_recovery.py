"""SIGKILL a process after its run has replanned, then resume the run in a new process.

The run (`replan_agents.replan_agent`) completes step 1 of plan version 1, fails step 2, and
replans: version 2 runs a slow step 4 that uses step 1's result, then step 5. The process is
killed while step 4 runs. A new process calling `run()` with the same run id must finish the
run under version 2 — the plan in force — with step 1's recorded result, never running a tool
of version 1 again, never asking the planner again, and leaving an event log without
duplicates.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from replan_agents import BACKUP_SECONDS, FIRST_PLAN, SECOND_PLAN, read_ledger

from support.processes import query, spawn_main, wait_for

pytestmark = pytest.mark.slow


def _events(url: str, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = query(
        url, "SELECT type, payload FROM pyworkflow_events WHERE run_id = ? ORDER BY seq", (run_id,)
    )
    return [(kind, json.loads(payload)) for kind, payload in rows]


def _replanned_and_running_version_two(url: str, run_id: str) -> bool:
    events = _events(url, run_id)
    kinds = [kind for kind, _ in events]
    if "AGENT_REPLANNING" not in kinds:
        return False
    after = events[kinds.index("AGENT_REPLANNING") :]
    return any(k == "AGENT_STEP_STARTED" and p["plan_version"] == 2 for k, p in after)


def test_a_replanned_run_killed_mid_step_resumes_under_the_new_plan(
    database_url: str, tmp_path: Path
) -> None:
    run_id = "replan-crash"
    ledger = tmp_path / "ledger"
    env = {"PYWORKFLOW_DATABASE_URL": database_url, "REPLAN_LEDGER": str(ledger)}

    victim = spawn_main(
        "victim", "replan_agents", "run", run_id, str(tmp_path / "victim.json"),
        env=env, log_dir=tmp_path,
    )  # fmt: skip
    wait_for(
        lambda: _replanned_and_running_version_two(database_url, run_id)
        and any(r.version == 2 and r.phase == "start" for r in read_ledger(ledger)),
        timeout=120, what="the replan and a step of version 2 running", watch=[victim],
    )  # fmt: skip
    victim.kill()

    # What the kill left: version 1 done with, step 4 of version 2 started and not finished.
    at_kill = read_ledger(ledger)
    assert {(r.version, r.label) for r in at_kill if r.phase == "done" and r.version == 1} == {
        (1, "1"), (1, "2")
    }  # fmt: skip
    assert (2, "4") in {(r.version, r.label) for r in at_kill if r.phase == "start"}
    assert (2, "4") not in {(r.version, r.label) for r in at_kill if r.phase == "done"}, (
        f"step 4 ({BACKUP_SECONDS}s) finished before the kill; the test did not catch it in flight"
    )
    (status,) = query(
        database_url, "SELECT status FROM pyworkflow_runs WHERE run_id = ?", (run_id,)
    )[0]
    assert status == "running"

    resumer = spawn_main(
        "resumer", "replan_agents", "run", run_id, str(tmp_path / "resumer.json"),
        env=env, log_dir=tmp_path,
    )  # fmt: skip
    resumer.wait(timeout=180)
    report = json.loads((tmp_path / "resumer.json").read_text())
    result = report["result"]

    # --- the result: completed under the plan in force ------------------------------------------
    assert result["status"] == "completed", result
    assert result["answer"] == "figures compared"
    assert result["replans"] == 1
    assert [[s["step"] for s in plan] for plan in result["plans"]] == [
        [s["step"] for s in FIRST_PLAN],
        [s["step"] for s in SECOND_PLAN],
    ]
    assert [s["step"] for s in result["plan"]] == [1, 4, 5]
    steps = {s["label"]: s for s in result["executed_steps"]}
    assert sorted(steps) == ["1", "2", "4", "5"]
    assert [steps[k]["plan_version"] for k in ("1", "2", "4", "5")] == [1, 1, 2, 2]
    assert steps["2"]["status"] == "failed"
    # Step 4 used version 1's recorded result, after the restart too.
    assert steps["4"]["arguments"] == {"topic": "figures beside notes on background"}
    assert steps["5"]["result"] == "notes on figures for figures beside notes on background"

    # --- what ran: version 1 never again; only the call in flight repeated ----------------------
    runs = Counter((r.version, r.label) for r in read_ledger(ledger) if r.phase == "start")
    assert runs[(1, "1")] == 1
    assert runs[(1, "2")] == 1
    assert runs[(1, "3")] == 0
    assert 1 <= runs[(2, "4")] <= 2  # in flight at the kill: at-least-once
    assert runs[(2, "5")] == 1
    planner_calls = [r.key for r in read_ledger(ledger) if r.tool == "planner"]
    assert planner_calls == ["planner:plan", "planner:replan"]  # recorded replies replayed
    pids = {r.pid for r in read_ledger(ledger)}
    assert pids == {victim.pid, report["pid"]}

    # --- the events: one story, numbered without gaps or repeats --------------------------------
    events = report["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "AGENT_STARTED" and types[-1] == "AGENT_COMPLETED"
    for kind, count in [
        ("AGENT_STARTED", 1), ("AGENT_PLAN_GENERATED", 2), ("AGENT_REPLANNING", 1),
        ("AGENT_STEP_FAILED", 1), ("AGENT_EXECUTION_COMPLETED", 1), ("AGENT_COMPLETED", 1),
    ]:  # fmt: skip
        assert types.count(kind) == count, (kind, types)
    for kind, labels in [
        ("AGENT_STEP_STARTED", ["1", "2", "4", "5"]),
        ("AGENT_STEP_COMPLETED", ["1", "4", "5"]),
    ]:
        assert sorted(e["payload"]["label"] for e in events if e["type"] == kind) == labels
    replanning = events[types.index("AGENT_REPLANNING")]["payload"]
    assert [s["step"] for s in replanning["new_plan"]] == [4, 5]
    assert "primary source is down" in replanning["reason"]
    # The log the resumed run reports is the one in the database.
    assert [(e["type"], e["payload"]) for e in events] == _events(database_url, run_id)
