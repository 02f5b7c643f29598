"""`pyworkflow runs`, `show` and `events`: read runs from the database, from any process.

These commands read PyWorkflow's own tables and never start the durable runtime, so they are
quick and safe next to running workers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pyworkflow.cli._common import Exit, print_json, table, use_database
from pyworkflow.cli._mermaid import mermaid
from pyworkflow.cli._render import (
    Glyphs,
    Painter,
    age,
    cost,
    duration,
    plural,
    preview,
    status_parts,
    step_rows,
    tokens,
)
from pyworkflow.cli._state import RunView, StepView, fold, is_final

_STATUSES = ("queued", "running", "waiting_for_approval", "completed", "failed", "cancelled")


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    runs = commands.add_parser("runs", parents=[common], help="list recent runs")
    runs.add_argument("--status", choices=_STATUSES, help="only runs in this state")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    runs.add_argument("--json", action="store_true", help="print JSON for scripts")
    runs.set_defaults(handler=runs_command)

    show = commands.add_parser(
        "show", parents=[common], help="show one run: plans, steps, approvals, usage"
    )
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument(
        "--mermaid", action="store_true", help="print the plan as a Mermaid graph instead"
    )
    show.add_argument("--full", action="store_true", help="do not shorten inputs and results")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    show.add_argument(
        "--otel", action="store_true", help="also export the run as OpenTelemetry spans"
    )
    show.set_defaults(handler=show_command)

    events = commands.add_parser(
        "events", parents=[common], help="print a run's events as JSON lines"
    )
    events.add_argument("run_id", metavar="RUN_ID")
    events.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events until the run ends"
    )
    events.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only events after this sequence number"
    )
    events.set_defaults(handler=events_command)


def _view(run_id: str) -> RunView:
    from pyworkflow.events import get_events_sync

    return fold(run_id, get_events_sync(run_id))


def _row(run_id: str) -> dict[str, Any]:
    from pyworkflow.exceptions import RunNotFoundError
    from pyworkflow.runs import shared_store

    row = shared_store().get_run(run_id)
    if row is None:
        raise RunNotFoundError(run_id)
    return row


# --- runs -------------------------------------------------------------------------------------


def runs_command(args: argparse.Namespace) -> int:
    use_database(args.database_url, must_exist=True)
    from pyworkflow.runs import list_runs

    if args.limit < 1:
        from pyworkflow.cli._common import CommandError

        raise CommandError(f"--limit must be at least 1, got {args.limit}", Exit.USAGE)
    now = time.time()
    summaries = [_summary(row, now) for row in list_runs(limit=args.limit, status=args.status)]
    if args.json:
        print_json(summaries)
        return Exit.OK
    if not summaries:
        print("no runs" + (f" with status {args.status}" if args.status else ""))
        return Exit.OK
    table(
        ["RUN ID", "AGENT", "STATUS", "AGE", "STEPS", "TOKENS", "COST"],
        [
            [
                s["run_id"],
                s["agent"],
                s["status"],
                age(s["created_at"], now),
                _steps_cell(s["steps"]),
                f"{s['tokens']:,}" if s["tokens"] is not None else "-",
                f"${s['cost_usd']:.4f}" if s["cost_usd"] is not None else "-",
            ]
            for s in summaries
        ],
    )
    return Exit.OK


def _steps_cell(steps: dict[str, int] | None) -> str:
    if not steps:
        return "-"
    cell = f"{steps['done']}/{steps['planned']}"
    return cell + (f" ({steps['failed']} failed)" if steps["failed"] else "")


def _summary(row: dict[str, Any], now: float) -> dict[str, Any]:
    view = _view(row["run_id"]) if row["kind"] == "agent" else None
    counts = view.counts() if view is not None else None
    return {
        "run_id": row["run_id"],
        "kind": row["kind"],
        "agent": row["name"],
        "status": row["status"],
        "query": row["query"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "age_seconds": round(now - row["created_at"], 3),
        "steps": None if counts is None else {k: counts[k] for k in ("done", "planned", "failed")},
        "tokens": view.tokens() if view is not None else None,
        "cost_usd": view.cost() if view is not None else None,
        "hook_id": row["hook_id"],
        "error": row["error"],
    }


# --- show -------------------------------------------------------------------------------------


def show_command(args: argparse.Namespace) -> int:
    use_database(args.database_url, must_exist=True)
    row = _row(args.run_id)
    view = _view(args.run_id)
    if args.otel:
        from pyworkflow.telemetry import export_run, otel_tracer_provider

        provider = otel_tracer_provider()
        export_run(args.run_id, tracer_provider=provider)
        provider.shutdown()
    if args.mermaid:
        print(mermaid(view.steps_in_force()))
        return Exit.OK
    executed = _executed_steps(row)
    hooks = _hooks_of(args.run_id)
    if args.json:
        print_json(_show_json(row, view, executed, hooks))
        return Exit.OK
    _print_show(row, view, executed, hooks, limit=None if args.full else 100)
    return Exit.OK


def _executed_steps(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's execution log (with resolved arguments) by label; only plans in force
    execute, and replans number their steps anew, so a label names one execution."""
    result = row.get("result") or {}
    return {str(s.get("label")): s for s in result.get("executed_steps", []) if isinstance(s, dict)}


def _hooks_of(run_id: str) -> list[dict[str, Any]]:
    """Every hook of the run, decided or not (the hooks module lists only pending ones)."""
    import sqlalchemy as sa

    from pyworkflow._store import hooks
    from pyworkflow.runs import shared_store

    with shared_store().begin() as conn:
        rows = (
            conn.execute(
                sa.select(hooks).where(hooks.c.run_id == run_id).order_by(hooks.c.created_at)
            )
            .mappings()
            .all()
        )
    out = []
    for r in rows:
        data = dict(r)
        data["payload"] = json.loads(data["payload"]) if data["payload"] else None
        data["response"] = json.loads(data["response"]) if data["response"] else None
        out.append(data)
    return out


def _print_show(
    row: dict[str, Any],
    view: RunView,
    executed: dict[str, dict[str, Any]],
    hooks: list[dict[str, Any]],
    *,
    limit: int | None,
) -> None:
    glyphs = Glyphs.for_encoding(sys.stdout.encoding)
    painter = Painter(colour=False)
    now = time.time()
    print(f"run {row['run_id']}  {row['status']}")
    print(f"  agent     {row['name']}")
    if view.planner_model:
        print(f"  models    planner {view.planner_model}, executor {view.executor_model}")
    print(f"  query     {row['query']}")
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
    took = ""
    if view.started_at is not None and view.finished_at is not None:
        took = f", took {duration(view.finished_at - view.started_at)}"
    print(f"  started   {started} ({age(row['created_at'], now)}{took})")
    for plan in view.plans:
        print()
        heading = (
            f"plan v{plan.version} {glyphs.dot} {plural(len(plan.steps), 'step')} {glyphs.dot} "
            f"{plan.planner_tokens} planner tokens"
        )
        print(heading + (f" {glyphs.dot} {plan.reason}" if plan.reason else ""))
        if plan.outcome:
            print(f"  ({plan.outcome})")
        for parts in step_rows(plan.steps, now=now, width=120, glyphs=glyphs):
            print(painter.line(parts))
    details = [(plan.version, step) for plan in view.plans for step in plan.steps]
    if details:
        print()
        print("steps")
        for version, step in details:
            _print_step(version, step, executed, limit, multiple=len(view.plans) > 1)
    if hooks or view.approvals:
        print()
        print("approvals")
        _print_approvals(view, hooks, limit)
    print()
    print("usage")
    _print_usage(view)
    if view.answer is not None or (row.get("result") or {}).get("answer") is not None:
        print()
        print("answer")
        answer = view.answer if view.answer is not None else row["result"]["answer"]
        print(
            answer if isinstance(answer, str) else json.dumps(answer, indent=2, ensure_ascii=False)
        )
    if view.error or row.get("error"):
        print()
        print(f"error: {view.error or row['error']}")
    if view.status == "running" or row["status"] == "running":
        print()
        print(painter.line(status_parts(view, now=now, glyphs=glyphs)))


def _print_step(
    version: int,
    step: StepView,
    executed: dict[str, dict[str, Any]],
    limit: int | None,
    *,
    multiple: bool,
) -> None:
    where = f" (plan v{version})" if multiple else ""
    tool = step.tool or "reasoning"
    print(f"  {step.id}{where} {step.description}  [{tool}]  {step.state}")
    if step.for_each:
        print(f"      for each   {step.for_each_label}")
    if step.params:
        print(f"      params     {preview(step.params, limit)}")
    for unit in step.units.values():
        record = executed.get(unit.label, {})
        label = f"{unit.label}: " if unit.item is not None else ""
        extra = ", ".join(
            x
            for x in (
                unit.mode or "",
                duration(unit.duration),
                f"{unit.executor_tokens} executor tokens" if unit.executor_tokens else "",
            )
            if x
        )
        if unit.item is not None or extra:
            print(f"      {label}{unit.state}" + (f" ({extra})" if extra else ""))
        if record.get("arguments") is not None and record.get("arguments") != step.params:
            print(f"      arguments  {preview(record['arguments'], limit)}")
        if unit.has_result:
            print(f"      result     {preview(unit.result, limit)}")
        if unit.error:
            print(f"      error      {unit.error}")


def _print_approvals(view: RunView, hooks: list[dict[str, Any]], limit: int | None) -> None:
    by_id = {a.hook_id: a for a in view.approvals}
    for hook in hooks:
        response = hook.get("response") or {}
        approval = by_id.get(hook["hook_id"])
        if hook["status"] == "decided":
            decision = (
                "approved"
                if response.get("approved")
                else "rejected"
                if "approved" in response
                else "delivered"
            )
        else:
            decision = hook["status"]
        what = hook["kind"]
        payload = hook["payload"] if isinstance(hook["payload"], dict) else {}
        if approval is not None and approval.plan_version is not None:
            what += f" of plan v{approval.plan_version}"
        elif hook["kind"] == "tool_approval" and "tool" in payload:
            what += f" of {payload['tool']} (step {payload.get('step', '?')})"
        waited = ""
        if hook.get("decided_at"):
            waited = f" after {duration(hook['decided_at'] - hook['created_at'])}"
        print(f"  {hook['hook_id']}  {what}  {decision}{waited}")
        if response.get("feedback"):
            print(f"      feedback   {response['feedback']}")
        if response.get("plan"):
            print(f"      edited plan {preview(response['plan'], limit)}")
    known = {h["hook_id"] for h in hooks}
    for approval in view.approvals:
        if approval.hook_id not in known:
            print(f"  {approval.hook_id}  {approval.kind}  {approval.decision or 'pending'}")


def _print_usage(view: RunView) -> None:
    usage = view.usage
    if usage is None:
        print(f"  so far    {tokens(view)} (cost is known when the run ends)")
        return
    for role in ("planner", "executor"):
        u = usage.get(role) or {}
        price = f"${u['cost_usd']:.4f}" if u.get("cost_usd") is not None else "cost n/a"
        unpriced = f" ({u['unpriced_requests']} unpriced)" if u.get("unpriced_requests") else ""
        print(
            f"  {role:<9} {plural(u.get('requests', 0), 'request')}, {u.get('input_tokens', 0):,} in / "
            f"{u.get('output_tokens', 0):,} out tokens, {price}{unpriced}"
        )
    print(f"  total     {view.tokens():,} tokens, cost {cost(view)}")


def _show_json(
    row: dict[str, Any],
    view: RunView,
    executed: dict[str, dict[str, Any]],
    hooks: list[dict[str, Any]],
) -> dict[str, Any]:
    def unit_json(version: int, unit: Any) -> dict[str, Any]:
        record = executed.get(unit.label, {})
        return {
            "label": unit.label,
            "item": unit.item,
            "state": unit.state,
            "started_at": unit.started_at,
            "finished_at": unit.finished_at,
            "duration_s": unit.duration,
            "mode": unit.mode,
            "executor_tokens": unit.executor_tokens,
            "arguments": record.get("arguments"),
            "result": unit.result if unit.has_result else None,
            "error": unit.error,
        }

    return {
        "run_id": row["run_id"],
        "agent": row["name"],
        "status": row["status"],
        "query": row["query"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "planner_model": view.planner_model,
        "executor_model": view.executor_model,
        "plans": [
            {
                "version": plan.version,
                "reason": plan.reason,
                "outcome": plan.outcome,
                "planner_tokens": plan.planner_tokens,
                "steps": [
                    {
                        **s.plan_entry(),
                        "state": s.state,
                        "units": [unit_json(plan.version, u) for u in s.units.values()],
                    }
                    for s in plan.steps
                ],
            }
            for plan in view.plans
        ],
        "approvals": [
            {
                k: h[k]
                for k in (
                    "hook_id",
                    "kind",
                    "name",
                    "status",
                    "response",
                    "created_at",
                    "decided_at",
                    "expires_at",
                )
            }
            for h in hooks
        ],
        "usage": view.usage,
        "tokens": view.tokens(),
        "cost_usd": view.cost(),
        "answer": view.answer,
        "error": view.error or row["error"],
        "error_type": view.error_type,
    }


# --- events -----------------------------------------------------------------------------------


def events_command(args: argparse.Namespace) -> int:
    use_database(args.database_url, must_exist=True)
    from pyworkflow.events import get_events_sync

    _row(args.run_id)
    seen = args.after
    while True:
        batch = get_events_sync(args.run_id, after=seen)
        for event in batch:
            seen = event.seq
            print(json.dumps(event.model_dump(mode="json"), ensure_ascii=False), flush=True)
            if args.follow and is_final(event.type):
                return Exit.OK
        if not args.follow:
            return Exit.OK
        # A run can end without a final event (cancelled from outside): stop then too.
        finished = not batch and _row(args.run_id)["status"] in ("completed", "failed", "cancelled")
        if finished and not get_events_sync(args.run_id, after=seen):
            return Exit.OK
        time.sleep(0.2)
