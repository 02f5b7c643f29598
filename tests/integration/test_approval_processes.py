"""Plan approval across real processes: start, exit, reject, re-approve, finish elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def python(
    code: str, env: dict[str, str], *, wait: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    if not wait:
        return subprocess.Popen(
            argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    done = subprocess.run(argv, env=env, text=True, capture_output=True, timeout=timeout)
    assert done.returncode == 0, f"process failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    values = dict(os.environ)
    values.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests" / "integration")]),
        PYWORKFLOW_DATABASE_URL=database_url,
        PYWORKFLOW_TEST_LEDGER=str(tmp_path / "ledger.txt"),
    )
    values.pop("ANTHROPIC_API_KEY", None)
    values.pop("OPENAI_API_KEY", None)
    return values


def pending(env: dict[str, str]) -> list[dict[str, object]]:
    out = python(
        """
        import json
        from pyworkflow.hooks import list_pending_hooks
        print(json.dumps(list_pending_hooks()))
        """,
        env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_for_pending(
    env: dict[str, str], exclude: set[str], timeout: float = 60
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hooks = [h for h in pending(env) if h["hook_id"] not in exclude]
        if hooks:
            return hooks[0]
        time.sleep(0.3)
    raise AssertionError("no new approval became pending")


def test_reject_then_approve_from_other_processes_and_a_worker_finishes(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Process 1 starts the agent and exits as soon as the plan waits for approval.
    started = python(
        """
        import json
        from approval_agents import billing_agent
        result = billing_agent.run_sync("Process refund for order #12345", run_id="refund-12345")
        print(json.dumps({"status": result.status, "hook_id": result.hook_id, "plan": result.plan}))
        """,
        env,
    )
    first = json.loads(started.stdout.strip().splitlines()[-1])
    assert first["status"] == "waiting_for_approval"
    assert [s["tool"] for s in first["plan"]] == ["lookup_order", "refund"]
    assert not (tmp_path / "ledger.txt").exists(), "nothing may run before approval"

    # Process 2 lists the pending approval and rejects it with feedback.
    hook = wait_for_pending(env, exclude=set())
    assert hook["hook_id"] == first["hook_id"]
    assert hook["kind"] == "plan_approval"
    python(
        f"""
        from pyworkflow import approve_workflow_hook_sync
        approve_workflow_hook_sync({first["hook_id"]!r}, approved=False, feedback="also email the customer")
        """,
        env,
    )

    # A worker (no agent call of its own) resumes the run left by process 1: it replans.
    worker = python(
        """
        import time, approval_agents
        from pyworkflow import engine, get_run_sync
        engine.get_runtime()
        handle = get_run_sync("refund-12345")
        import asyncio
        result = asyncio.run(handle.wait(timeout=100))
        print("WORKER", result.status)
        engine.shutdown()
        """,
        env,
        wait=False,
    )
    try:
        second = wait_for_pending(env, exclude={first["hook_id"]})
        assert [s["tool"] for s in second["payload"]["plan"]] == [
            "lookup_order",
            "refund",
            "send_email",
        ]
        assert not (tmp_path / "ledger.txt").exists(), "a rejected plan never runs"

        # Process 3 approves the new plan; the worker finishes the run.
        python(
            f"""
            from pyworkflow import approve_workflow_hook_sync
            approve_workflow_hook_sync({second["hook_id"]!r}, approved=True, feedback="Looks good")
            approve_workflow_hook_sync({second["hook_id"]!r}, approved=True, feedback="Looks good")
            """,
            env,
        )
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert "WORKER completed" in out
    finally:
        if worker.poll() is None:
            worker.kill()

    ledger = (tmp_path / "ledger.txt").read_text().splitlines()
    assert sorted(ledger) == sorted(
        ["lookup_order:12345", "refund:12345:42.0", "send_email:ada@example.com"]
    )

    story = python(
        """
        import json
        from pyworkflow import get_events_sync, get_run_sync
        import asyncio
        events = get_events_sync("refund-12345")
        print(json.dumps([[e.seq, e.type.value, e.payload.get("hook_id"), e.payload.get("feedback")] for e in events]))
        """,
        env,
    ).stdout
    events = json.loads(story.strip().splitlines()[-1])
    types = [e[1] for e in events]
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    assert types[:7] == [
        "AGENT_STARTED",
        "AGENT_PLAN_GENERATED",
        "AGENT_PLAN_APPROVAL_REQUESTED",
        "AGENT_PLAN_REJECTED",
        "AGENT_PLAN_GENERATED",
        "AGENT_PLAN_APPROVAL_REQUESTED",
        "AGENT_PLAN_APPROVED",
    ]
    assert events[3][2:] == [first["hook_id"], "also email the customer"]
    assert events[6][2:] == [second["hook_id"], "Looks good"]
    assert types.count("AGENT_STEP_COMPLETED") == 3
    assert types[-2:] == ["AGENT_EXECUTION_COMPLETED", "AGENT_COMPLETED"]


def test_an_undecided_approval_times_out_and_fails_the_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = python(
        """
        import asyncio, json
        from approval_agents import impatient_agent
        from pyworkflow import get_run_sync, get_events_sync, approve_workflow_hook_sync
        from pyworkflow.exceptions import HookExpiredError
        first = impatient_agent.run_sync("Process refund for order #12345")
        final = asyncio.run(get_run_sync(first.run_id).wait(timeout=60))
        try:
            approve_workflow_hook_sync(first.hook_id, approved=True)
            late = "accepted"
        except HookExpiredError as exc:
            late = str(exc)
        events = [e.type.value for e in get_events_sync(first.run_id)]
        print(json.dumps({"status": final.status, "error": final.error, "late": late, "events": events}))
        """,
        env,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "failed"
    assert "not decided within 1.5s" in outcome["error"]
    assert "expired" in outcome["late"]
    assert outcome["events"][-1] == "AGENT_FAILED"
    assert "AGENT_STEP_STARTED" not in outcome["events"]
    assert not (tmp_path / "ledger.txt").exists()
