"""SIGKILL a process in the middle of an agent run, then let another process finish it.

The agent (`crash_agents.py`) has uneven parallel branches, a fan-out, a step joining two
branches, two model-filled steps side by side (an executor-model call then a tool call in each,
the swapped-results trap of DESIGN.md §7.2) and a reasoning step. Every tool and model call
writes start/finish lines to a ledger, so the test counts from outside what really ran.

The promise under test (README "Durability"): a tool call that had finished — its result
recorded — is never run again; one in flight at the crash runs again (at-least-once); the
resumed run ends exactly as an uninterrupted one; its event log has no duplicates.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crash_agents
import pytest
from crash_agents import read_ledger

from support.processes import Launcher, dbos_table, query, spawn_main, wait_for

pytestmark = pytest.mark.slow

# A tool call's key is its idempotency key, `<run>/v<plan version>/<label>`: also the id of
# the step's child workflow, whose recorded operations show whether the call had finished.
TOOL_LABELS = ["1", "2", "3", "4", "5a", "5b", "5c", "6", "7", "8"]
TOOL_OF = {
    "1": "slow",
    "2": "slow",
    "3": "slow",
    "4": "expand",
    "5a": "fetch",
    "5b": "fetch",
    "5c": "fetch",
    "6": "combine",
    "7": "annotate",
    "8": "annotate",
}
ALL_LABELS = [*TOOL_LABELS, "9"]

START_TIMEOUT = 120.0
FINISH_TIMEOUT = 180.0


# --- when to kill --------------------------------------------------------------------------


def _lines(ledger: Path) -> list[tuple[str, int, str, str]]:
    return read_ledger(ledger)


def _completed_labels(url: str, run_id: str) -> set[str]:
    rows = query(
        url,
        "SELECT payload FROM pyworkflow_events WHERE run_id = ? AND type = ?",
        (run_id, "AGENT_STEP_COMPLETED"),
    )
    return {json.loads(payload)["label"] for (payload,) in rows}


def _during_planning(ledger: Path, url: str, run_id: str) -> bool:
    lines = _lines(ledger)
    return any(p == "start" and what == "planner" for p, _, _, what in lines)


def _mid_fan_out(ledger: Path, url: str, run_id: str) -> bool:
    # One fan-out element recorded, the others still running, and the first model-filled
    # branch past its model call and inside its tool call.
    lines = _lines(ledger)
    started = {key for p, _, key, _ in lines if p == "start"}
    done = {key for p, _, key, _ in lines if p == "done"}
    if f"{run_id}/v1/7" not in started or f"{run_id}/v1/5c" in done:
        return False
    return "5a" in _completed_labels(url, run_id)


def _during_answer(ledger: Path, url: str, run_id: str) -> bool:
    return any(p == "start" and key == "model:answer" for p, _, key, _ in _lines(ledger))


KILL_AT: dict[str, Callable[[Path, str, str], bool]] = {
    "planning": _during_planning,
    "fan_out": _mid_fan_out,
    "answer": _during_answer,
}


# --- the uninterrupted reference ------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same agent run without interruption, in its own process and database."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "reference.json"
    env = {
        "PYWORKFLOW_DATABASE_URL": f"sqlite:///{tmp}/reference.sqlite",
        "CRASH_LEDGER": str(tmp / "ledger"),
    }
    process = spawn_main(
        "reference", "crash_agents", "run", "reference", str(out), env=env, log_dir=tmp
    )
    process.wait(timeout=FINISH_TIMEOUT)
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["result"]["status"] == "completed", report["result"]
    # Uninterrupted, every call ran exactly once.
    counts = Counter((p, key) for p, _, key, _ in read_ledger(tmp / "ledger"))
    assert all(n == 1 for n in counts.values()), counts
    return report


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.close()


# --- helpers ---------------------------------------------------------------------------------


def _recorded_tool_calls(url: str, run_id: str) -> set[str]:
    """Labels whose tool call has its result recorded (so must never run again)."""
    rows = query(
        url,
        f"SELECT workflow_uuid, function_name FROM {dbos_table(url, 'operation_outputs')} "
        "WHERE workflow_uuid LIKE ? AND error IS NULL",
        (f"{run_id}/v1/%",),
    )
    return {wf.rsplit("/", 1)[1] for wf, fn in rows if TOOL_OF.get(wf.rsplit("/", 1)[1]) == fn}


def _steps_by_label(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        s["label"]: {k: s[k] for k in ("step", "tool", "arguments", "result", "status", "mode")}
        for s in result["executed_steps"]
    }


def _without_run_id(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["type"], {k: v for k, v in e["payload"].items() if k != "run_id"}) for e in events]


def assert_results_encode_their_inputs(result: dict[str, Any]) -> None:
    """Each branch's result spells out its own inputs: nothing was swapped between branches."""
    steps = {s["label"]: s for s in result["executed_steps"]}
    # Complete params call the tool directly; the idempotency key PyWorkflow passes is no
    # argument the plan lacks.
    direct = {label for label, s in steps.items() if s["mode"] == "direct"}
    assert direct == set(TOOL_LABELS) - {"7", "8"}
    assert steps["1"]["result"] == "slow:a"
    assert steps["2"]["result"] == "slow:b"
    assert steps["3"]["result"] == "slow:c"
    items = steps["4"]["result"]
    assert items == [f"slow:a/item{i}" for i in range(3)]
    for index, label in enumerate(["5a", "5b", "5c"]):
        assert steps[label]["arguments"] == {"item": items[index]}
        assert steps[label]["result"] == f"fetched:{items[index]}"
    assert steps["6"]["result"] == "(slow:b)+(slow:c)"
    for label, text in (("7", "slow:b"), ("8", "slow:c")):
        note = crash_agents.note_for(text)
        assert steps[label]["mode"] == "model"
        assert steps[label]["arguments"] == {"text": text, "note": note}
        assert steps[label]["result"] == f"{text}#{note}"
    assert steps["9"]["result"] == "summary:" + "+".join(f"fetched:{item}" for item in items)


def assert_clean_event_log(events: list[dict[str, Any]]) -> None:
    """Ordered, numbered 1..n without gaps or repeats, each step completed once, finished."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), seqs
    types = [e["type"] for e in events]
    assert types[0] == "AGENT_STARTED"
    assert types[-1] == "AGENT_COMPLETED"
    assert types.count("AGENT_STARTED") == 1
    assert types.count("AGENT_PLAN_GENERATED") == 1
    assert types.count("AGENT_EXECUTION_COMPLETED") == 1
    assert types.count("AGENT_COMPLETED") == 1
    assert "AGENT_FAILED" not in types and "AGENT_STEP_FAILED" not in types
    for kind in ("AGENT_STEP_STARTED", "AGENT_STEP_COMPLETED"):
        labels = [e["payload"]["label"] for e in events if e["type"] == kind]
        assert sorted(labels) == sorted(ALL_LABELS), (kind, labels)
    # A step completes after it starts.
    started_at = {
        e["payload"]["label"]: e["seq"] for e in events if e["type"] == "AGENT_STEP_STARTED"
    }
    for e in events:
        if e["type"] == "AGENT_STEP_COMPLETED":
            assert e["seq"] > started_at[e["payload"]["label"]]


# --- the test --------------------------------------------------------------------------------


@pytest.mark.parametrize("resume", ["run", "takeover"])
def test_sigkill_mid_fan_out_then_recovery_matches_an_uninterrupted_run(
    database_url: str,
    tmp_path: Path,
    launcher: Launcher,
    reference: dict[str, Any],
    resume: str,
) -> None:
    """Killed with tool calls finished and others in flight, on SQLite and PostgreSQL; resumed
    by `run(query, run_id=same)` or by a process that only starts the runtime."""
    crash_and_recover(database_url, tmp_path, launcher, reference, moment="fan_out", resume=resume)


@pytest.mark.parametrize(("moment", "resume"), [("planning", "run"), ("answer", "takeover")])
def test_sigkill_while_a_model_call_is_in_flight(
    sqlite_url: str,
    tmp_path: Path,
    launcher: Launcher,
    reference: dict[str, Any],
    moment: str,
    resume: str,
) -> None:
    """Killed while the planner writes the plan, or while the executor writes the answer."""
    crash_and_recover(sqlite_url, tmp_path, launcher, reference, moment=moment, resume=resume)


def crash_and_recover(
    database_url: str,
    tmp_path: Path,
    launcher: Launcher,
    reference: dict[str, Any],
    *,
    moment: str,
    resume: str,
) -> None:
    run_id = f"crash-{moment}-{resume}"
    ledger = tmp_path / "ledger"
    env = {"PYWORKFLOW_DATABASE_URL": database_url, "CRASH_LEDGER": str(ledger)}

    launcher.env.update(env)
    victim = launcher.main("victim", "crash_agents", "run", run_id, str(tmp_path / "victim.json"))
    # The process that will finish the run starts now but waits for its turn (see main()).
    out = tmp_path / "resumed.json"
    go = tmp_path / "go"
    resumer = launcher.main(
        "resumer", "crash_agents", resume, run_id, str(out), env={"CRASH_GO_FILE": str(go)}
    )
    kill_now = KILL_AT[moment]
    wait_for(
        lambda: kill_now(ledger, database_url, run_id),
        timeout=START_TIMEOUT,
        what=f"the moment to kill: {moment}",
        watch=[victim, resumer],
    )
    victim.kill()

    # --- what the crash left ---------------------------------------------------------------
    at_kill = read_ledger(ledger)
    started_at_kill = {key for p, _, key, _ in at_kill if p == "start" and "/v" in key}
    done_at_kill = {key for p, _, key, _ in at_kill if p == "done" and "/v" in key}
    recorded = {f"{run_id}/v1/{label}" for label in _recorded_tool_calls(database_url, run_id)}
    in_flight = started_at_kill - done_at_kill
    # A call can finish an instant before the kill yet before its result is recorded: the
    # engine cannot know it ran, so it is in flight as far as the promise goes.
    finished_unrecorded = done_at_kill - recorded
    assert recorded <= done_at_kill
    (status,) = query(
        database_url, "SELECT status FROM pyworkflow_runs WHERE run_id = ?", (run_id,)
    )[0]
    assert status == "running"
    if moment == "planning":
        assert not started_at_kill
    if moment == "fan_out":
        assert recorded, "the kill should catch some tool calls finished"
        assert in_flight, "the kill should catch some tool calls in flight"
        assert f"{run_id}/v1/5a" in recorded
    if moment == "answer":
        assert len(recorded) == len(TOOL_LABELS)

    # --- a new process finishes the run ----------------------------------------------------
    go.touch()
    resumer.wait(timeout=FINISH_TIMEOUT)
    report = json.loads(out.read_text())
    result = report["result"]
    assert result["status"] == "completed", result

    # --- exactly once for what had finished, at least once for what was in flight ---------
    final = read_ledger(ledger)
    starts = Counter(key for p, _, key, _ in final if p == "start")
    dones = Counter(key for p, _, key, _ in final if p == "done")
    resumer_starts = Counter(key for p, pid, key, _ in final if p == "start" and pid == resumer.pid)
    for label in TOOL_LABELS:
        key = f"{run_id}/v1/{label}"
        if key in recorded:
            assert (starts[key], dones[key], resumer_starts[key]) == (1, 1, 0), (
                f"finished tool call {label} ran again after the crash"
            )
        elif key in in_flight:
            assert (starts[key], dones[key], resumer_starts[key]) == (2, 1, 1), label
        elif key in finished_unrecorded:
            assert (starts[key], dones[key], resumer_starts[key]) == (2, 2, 1), label
        else:  # not yet begun at the crash
            assert (starts[key], dones[key], resumer_starts[key]) == (1, 1, 1), label
    # Model calls: recorded ones are not paid for twice; the one in flight is asked again.
    plan_key = next(key for p, _, key, what in final if what == "planner")
    assert starts[plan_key] == (2 if moment == "planning" else 1)
    assert starts["model:answer"] == (2 if moment == "answer" else 1)
    assert dones["model:answer"] == 1

    # --- the same outcome as without the crash ---------------------------------------------
    expected = reference["result"]
    assert result["answer"] == expected["answer"]
    assert result["plan"] == expected["plan"]
    assert _steps_by_label(result) == _steps_by_label(expected)
    assert result["usage"] == expected["usage"]
    assert_results_encode_their_inputs(result)

    # --- a clean event log ----------------------------------------------------------------
    events = report["events"]
    assert_clean_event_log(events)
    assert Counter(t for t, _ in _without_run_id(events)) == Counter(
        t for t, _ in _without_run_id(reference["events"])
    )
    assert events[-1]["payload"]["answer"] == expected["answer"]

    # Every workflow of the run finished, and nothing of it is left to the dead process.
    rows = query(
        database_url,
        f"SELECT workflow_uuid, status, executor_id FROM {dbos_table(database_url, 'workflow_status')} "
        "WHERE workflow_uuid = ? OR workflow_uuid LIKE ?",
        (run_id, f"{run_id}/%"),
    )
    assert len(rows) == 1 + len(ALL_LABELS)
    assert {status for _, status, _ in rows} == {"SUCCESS"}
