"""`pyworkflow approvals`, `approve` and `reject`: decide what waits for a human.

Deciding needs no runtime: the decision is validated, recorded on the hook and sent to the
waiting run's inbox. The run itself continues in whichever process serves it — a worker, or
`pyworkflow run ... --run-id` — so the commands say whether one is running.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pyworkflow._process import pid_alive
from pyworkflow.cli._common import CommandError, Exit, module_of, print_json, use_database
from pyworkflow.cli._render import Glyphs, Painter, age, plural, preview, step_rows
from pyworkflow.cli._state import steps_from_plan

_OVER = ("completed", "failed", "cancelled")


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    approvals = commands.add_parser(
        "approvals", parents=[common], help="list hooks waiting for a decision, with their plans"
    )
    approvals.add_argument("--run-id", help="only this run's hooks")
    approvals.add_argument("--json", action="store_true", help="print JSON for scripts")
    approvals.set_defaults(handler=approvals_command)

    approve = commands.add_parser("approve", parents=[common], help="approve a plan or tool call")
    approve.add_argument("hook_id", metavar="HOOK_ID")
    approve.add_argument("--feedback", help="a note for the record")
    approve.add_argument(
        "--plan",
        metavar="FILE",
        help="execute this edited plan instead (JSON list of steps; '-' reads stdin)",
    )
    approve.set_defaults(handler=approve_command)

    reject = commands.add_parser(
        "reject", parents=[common], help="reject a plan or tool call; the agent replans"
    )
    reject.add_argument("hook_id", metavar="HOOK_ID")
    reject.add_argument("--feedback", required=True, help="why, for the planner's next attempt")
    reject.set_defaults(handler=reject_command)


def _runs_by_id(run_ids: set[str]) -> dict[str, dict[str, Any]]:
    from pyworkflow.runs import shared_store

    store = shared_store()
    return {run_id: row for run_id in run_ids if (row := store.get_run(run_id)) is not None}


def approvals_command(args: argparse.Namespace) -> int:
    use_database(args.database_url, must_exist=True)
    from pyworkflow.hooks import list_pending_hooks

    pending = list_pending_hooks(run_id=args.run_id)
    runs = _runs_by_id({h["run_id"] for h in pending})
    # A hook of a run that ended (cancelled, failed) can no longer be decided usefully.
    pending = [h for h in pending if runs.get(h["run_id"], {}).get("status") not in _OVER]
    if args.json:
        print_json([_hook_json(h, runs.get(h["run_id"])) for h in pending])
        return Exit.OK
    if not pending:
        print("no approvals pending")
        return Exit.OK
    glyphs = Glyphs.for_encoding(sys.stdout.encoding)
    painter = Painter(colour=False)
    now = time.time()
    for i, hook in enumerate(pending):
        run = runs.get(hook["run_id"], {})
        if i:
            print()
        expires = ""
        if hook["expires_at"] is not None:
            left = hook["expires_at"] - now
            expires = f", expires in {_span(left)}" if left > 0 else ", expired"
        print(
            f"{hook['hook_id']}  {hook['kind']}  waiting {age(hook['created_at'], now).removesuffix(' ago')}{expires}"
        )
        print(f"  run      {hook['run_id']} ({run.get('name', '?')})")
        if run.get("query"):
            print(f"  query    {run['query']}")
        payload = (
            hook["payload"] if isinstance(hook["payload"], dict) else {"value": hook["payload"]}
        )
        plan = payload.get("plan")
        if hook["kind"] == "plan_approval" and isinstance(plan, list):
            if payload.get("reason"):
                print(f"  reason   {payload['reason']}")
            print(f"  plan     {plural(len(plan), 'step')}")
            rows = step_rows(
                steps_from_plan(plan),
                now=now,
                width=120,
                glyphs=glyphs,
                indent="    ",
                states=False,
            )
            for parts in rows:
                print(painter.line(parts).rstrip())
            for step in plan:
                if step.get("params"):
                    print(f"    {step.get('step')}: {preview(step['params'], 100)}")
        elif hook["kind"] == "tool_approval" and "tool" in payload:
            call = f"{payload['tool']} {preview(payload.get('arguments', {}), 100)}"
            print(f"  call     step {payload.get('step', '?')}: {call}")
        else:
            for key, value in payload.items():
                print(f"  {key:<8} {preview(value, 100)}")
        print(f"  approve: pyworkflow approve {hook['hook_id']}")
        print(f'  reject:  pyworkflow reject {hook["hook_id"]} --feedback "..."')
    return Exit.OK


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _hook_json(hook: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "hook_id": hook["hook_id"],
        "kind": hook["kind"],
        "name": hook["name"],
        "run_id": hook["run_id"],
        "agent": (run or {}).get("name"),
        "query": (run or {}).get("query"),
        "created_at": hook["created_at"],
        "expires_at": hook["expires_at"],
        "payload": hook["payload"],
    }


def _read_plan(source: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read the edited plan: {exc}", Exit.USAGE) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"the edited plan in {source!r} is not JSON: {exc}", Exit.USAGE
        ) from None
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        data = data["steps"]
    if not isinstance(data, list):
        raise CommandError(
            f'the edited plan in {source!r} must be a JSON list of steps (or {{"steps": [...]}}), '
            f"got {type(data).__name__}",
            Exit.USAGE,
        )
    return data


def approve_command(args: argparse.Namespace) -> int:
    plan = _read_plan(args.plan) if args.plan else None
    return _decide(args, approved=True, feedback=args.feedback, plan=plan)


def reject_command(args: argparse.Namespace) -> int:
    if not args.feedback.strip():
        raise CommandError("--feedback must say why, for the planner's next attempt", Exit.USAGE)
    return _decide(args, approved=False, feedback=args.feedback, plan=None)


def _decide(args: argparse.Namespace, *, approved: bool, feedback: str | None, plan: Any) -> int:
    use_database(args.database_url, must_exist=True)
    from pyworkflow.hooks import approve_workflow_hook_sync

    before = _hook(args.hook_id)
    approve_workflow_hook_sync(args.hook_id, approved, feedback=feedback, plan=plan)
    hook = _hook(args.hook_id)
    run = _runs_by_id({hook["run_id"]}).get(hook["run_id"], {}) if hook else {}
    verb = "approved" if approved else "rejected"
    what = hook["kind"].replace("_", " ") if hook else "hook"
    again = (
        " (already decided the same way; nothing changed)"
        if before and before["status"] == "decided"
        else ""
    )
    print(f"{verb} {args.hook_id} ({what} of run {run.get('run_id', '?')}){again}")
    if not _live_process():
        module = module_of(run.get("name", "")) or "MODULE"
        print(
            "no PyWorkflow process is running on this database; continue the run with:\n"
            f"  pyworkflow worker --import {module}",
            file=sys.stderr,
        )
    return Exit.OK


def _hook(hook_id: str) -> dict[str, Any] | None:
    from pyworkflow._hook_store import HookStore
    from pyworkflow.runs import shared_store

    return HookStore(shared_store()).get(hook_id)


def _live_process() -> bool:
    """Whether any process sharing this database is alive (so a waiting run will continue)."""
    from pyworkflow.config import current_settings
    from pyworkflow.runs import shared_store

    host = socket.gethostname()
    now = time.time()
    for row in shared_store().list_executors():
        if row.hostname == host:
            if pid_alive(row.pid) and now - row.last_seen < current_settings().takeover_after:
                return True
        elif now - row.last_seen < current_settings().takeover_after:
            return True
    return False
