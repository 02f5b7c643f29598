"""`pyworkflow run MODULE:AGENT "query"`: start (or rejoin) a run and watch it to its end.

The view is driven by the run's event log, polled while the run executes in this process's
runtime: a live tree redrawn in place on a terminal, one line per event otherwise. Ctrl-C stops
this process only; the run is durable and resumes later (`--run-id`, or a worker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pyworkflow.cli._common import (
    CommandError,
    Exit,
    colour_wanted,
    module_of,
    print_json,
    quiet_engine_shutdown,
    use_database,
)
from pyworkflow.cli._render import Glyphs, Painter, event_lines, live_frame
from pyworkflow.cli._state import RunView
from pyworkflow.events import Event, get_events
from pyworkflow.exceptions import ConfigurationError, PyWorkflowError

if TYPE_CHECKING:
    from pyworkflow.agents.plan_execute import PlanExecuteAgent

_POLL_SECONDS = 0.1
_FINISHED = ("completed", "failed", "cancelled")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run",
        parents=[common],
        help="run an agent and watch it live",
        description="Run an agent durably and watch its plan execute. Ctrl-C leaves the run "
        "resumable: run the same command with --run-id, or start a worker.",
    )
    run.add_argument(
        "agent",
        metavar="MODULE:AGENT",
        help="where the agent is defined, e.g. myapp.agents:research_agent (or path/to/file.py:agent)",
    )
    run.add_argument("query", help="the request for the agent")
    run.add_argument(
        "--run-id",
        help="the run's id; an existing id rejoins that run (resuming it if interrupted)",
    )
    run.add_argument("--json", action="store_true", help="print only the final result, as JSON")
    run.add_argument(
        "--otel",
        action="store_true",
        help="export OpenTelemetry spans of the run (needs the otel extra)",
    )
    run.set_defaults(handler=run_command)


# --- loading the agent ------------------------------------------------------------------------


def load_agent(spec: str) -> PlanExecuteAgent:
    """Import `MODULE:AGENT` (the current directory first on the path) and return the agent."""
    from pyworkflow.agents.plan_execute import PlanExecuteAgent

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CommandError(
            f"expected MODULE:AGENT (e.g. myapp.agents:research_agent), got {spec!r}", Exit.USAGE
        )
    if module_name.endswith(".py"):
        module_name = _module_from_path(module_name)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CommandError(
                f"cannot import module {module_name!r} ({exc}); run from the directory that "
                "contains it, or add that directory to PYTHONPATH",
                Exit.USAGE,
            ) from None
        raise CommandError(f"importing {module_name!r} failed: {exc}", Exit.USAGE) from None
    except Exception as exc:
        raise CommandError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", Exit.USAGE
        ) from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            agents = sorted(n for n, v in vars(module).items() if isinstance(v, PlanExecuteAgent))
            raise CommandError(
                f"module {module_name!r} has no {attribute!r}; agents it defines: "
                f"{', '.join(agents) or 'none'}",
                Exit.USAGE,
            )
        found = getattr(found, part)
    if not isinstance(found, PlanExecuteAgent):
        raise CommandError(
            f"{spec!r} is a {type(found).__name__}, not an agent; `pyworkflow run` runs agents "
            "made with @agent(...) or PlanExecuteAgent(...)",
            Exit.USAGE,
        )
    return found


def _module_from_path(path_text: str) -> str:
    path = Path(path_text).resolve()
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        raise CommandError(
            f"{path_text!r} is outside the current directory; run from a directory above it "
            "or use MODULE:AGENT",
            Exit.USAGE,
        ) from None
    return ".".join(relative.with_suffix("").parts)


# --- output -----------------------------------------------------------------------------------


class LiveOutput:
    """The run redrawn in place on a terminal: the plan tree with states, durations, tokens."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.glyphs = Glyphs.for_encoding(getattr(stream, "encoding", None))
        self.painter = Painter(colour=colour_wanted(stream))
        self.drawn = 0
        self.tick = 0

    def event(self, event: Event, view: RunView) -> None:
        pass  # the next frame shows it

    def frame(self, view: RunView, *, final: bool = False) -> None:
        self.tick += 1
        size = shutil.get_terminal_size()
        lines = live_frame(
            view,
            now=time.time(),
            width=size.columns,
            height=size.lines,
            glyphs=self.glyphs,
            tick=self.tick,
            painter=self.painter,
        )
        out = "\x1b[?25l" if not self.drawn else f"\r\x1b[{self.drawn}A"
        out += "\x1b[J" + "\n".join(lines) + "\n"
        self.stream.write(out)
        self.stream.flush()
        self.drawn = len(lines)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\x1b[?25h")  # the cursor, hidden while frames are drawn
            self.stream.flush()


class LogOutput:
    """One line per event, for pipes, files and CI logs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.glyphs = Glyphs.for_encoding(getattr(stream, "encoding", None))
        self.header = False

    def event(self, event: Event, view: RunView) -> None:
        if not self.header:
            self.header = True
            print(
                f"run {view.run_id} {self.glyphs.dot} {view.agent} {self.glyphs.dot} {view.query!r}",
                file=self.stream,
            )
        for line in event_lines(event, view, self.glyphs):
            print(line, file=self.stream)
        self.stream.flush()

    def frame(self, view: RunView, *, final: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


class QuietOutput(LogOutput):
    def event(self, event: Event, view: RunView) -> None:
        pass


# --- the command ------------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    use_database(args.database_url, must_exist=False)
    agent = load_agent(args.agent)
    recorder = provider = None
    if args.otel:
        from pyworkflow.telemetry import SpanRecorder, otel_tracer_provider

        provider = otel_tracer_provider()
        recorder = SpanRecorder(tracer_provider=provider)
    from pyworkflow.runs import new_run_id, shared_store

    run_id = args.run_id or new_run_id()
    existing = shared_store().get_run(run_id)
    if existing is not None:
        if existing["name"] != agent.name:
            raise CommandError(
                f"run {run_id!r} belongs to agent {existing['name']!r}, not {agent.name!r}",
                Exit.USAGE,
            )
        print(f"rejoining run {run_id} ({existing['status'].replace('_', ' ')})", file=sys.stderr)
        if existing["query"] != args.query:
            print(
                f"note: run {run_id} was started with query {existing['query']!r}; "
                "continuing it with that query",
                file=sys.stderr,
            )
    if args.json:
        output: LiveOutput | LogOutput = QuietOutput(sys.stdout)
    elif sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        output = LiveOutput(sys.stdout)
    else:
        output = LogOutput(sys.stdout)
    try:
        outcome, view = asyncio.run(_drive(agent, args.query, run_id, output, recorder))
    finally:
        output.close()
        if recorder is not None:
            recorder.close()
        if provider is not None:
            provider.shutdown()  # flushes the spans
        from pyworkflow import shutdown

        quiet_engine_shutdown()
        shutdown()
    return _report(outcome, view, agent, args, run_id)


async def _drive(
    agent: PlanExecuteAgent, query: str, run_id: str, output: LiveOutput | LogOutput, recorder: Any
) -> tuple[str, RunView]:
    """Run and watch until the run finishes, waits for a human, or Ctrl-C. Returns the outcome."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def interrupted() -> None:
        stop.set()
        # A second Ctrl-C while stopping falls through to Python's default: exit at once.
        loop.remove_signal_handler(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, interrupted)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(agent.run(query, run_id=run_id))
    view = RunView(run_id, agent=agent.name, query=query)
    try:
        while True:
            await _catch_up(view, output, recorder)
            if task.done() and not task.cancelled() and task.exception() is not None:
                _raise_start_error(task.exception())
            outcome = await _settled(run_id)
            if outcome is not None:
                await _catch_up(view, output, recorder)
                output.frame(view, final=True)
                return outcome, view
            if stop.is_set():
                output.frame(view, final=True)
                return "interrupted", view
            output.frame(view)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), _POLL_SECONDS)
    finally:
        task.cancel()
        loop.remove_signal_handler(signal.SIGTERM)


async def _catch_up(view: RunView, output: LiveOutput | LogOutput, recorder: Any) -> None:
    for event in await get_events(view.run_id, after=view.last_seq):
        view.apply(event)
        output.event(event, view)
        if recorder is not None:
            recorder.feed(event)


async def _settled(run_id: str) -> str | None:
    """`completed`/`failed`/`cancelled`/`waiting` once the run is there; None while it goes."""
    from pyworkflow.hooks import list_pending_hooks
    from pyworkflow.runs import shared_store

    row = await asyncio.to_thread(shared_store().get_run, run_id)
    if row is None:
        return None
    if row["status"] in _FINISHED:
        return str(row["status"])
    # Still waiting only while a hook is pending: a decided one means the run resumes.
    if row["status"] == "waiting_for_approval" and await asyncio.to_thread(
        list_pending_hooks, run_id=run_id
    ):
        return "waiting"
    return None


def _raise_start_error(exc: BaseException | None) -> None:
    if isinstance(exc, ConfigurationError):
        raise CommandError(str(exc), Exit.USAGE)
    if isinstance(exc, PyWorkflowError):
        raise CommandError(str(exc), Exit.RUN_FAILED)
    assert exc is not None
    raise exc


def resume_hint(spec: str, agent: PlanExecuteAgent, query: str, run_id: str) -> list[str]:
    """The two ways to continue a run: rejoin it here, or let a worker take it."""
    return [
        f"  pyworkflow run {shlex.quote(spec)} {shlex.quote(query)} --run-id {run_id}",
        f"  pyworkflow worker --import {module_of(agent.name)}",
    ]


def _report(
    outcome: str, view: RunView, agent: PlanExecuteAgent, args: argparse.Namespace, run_id: str
) -> int:
    err = sys.stderr
    query = view.query or args.query
    if args.json:
        from pyworkflow.runs import get_run_sync

        result = asyncio.run(get_run_sync(run_id).result())
        print_json(result.model_dump(mode="json") if hasattr(result, "model_dump") else result)
    if outcome == "interrupted":
        print(f"\ninterrupted: run {run_id} stays resumable. Continue it with:", file=err)
        for line in resume_hint(args.agent, agent, query, run_id):
            print(line, file=err)
        return Exit.INTERRUPTED
    if outcome == "waiting":
        _waiting_note(args.agent, agent, query, run_id, sys.stderr if args.json else sys.stdout)
        return Exit.WAITING
    if outcome == "completed":
        if not args.json:
            _print_answer(view)
        return Exit.OK
    if outcome == "cancelled":
        print(f"run {run_id} was cancelled", file=err)
        return Exit.RUN_FAILED
    print(f"run {run_id} failed: {view.error or 'see `pyworkflow show ' + run_id + '`'}", file=err)
    return Exit.RUN_FAILED


def _print_answer(view: RunView) -> None:
    answer = view.answer
    if answer is None:
        from pyworkflow.runs import shared_store

        row = shared_store().get_run(view.run_id) or {}
        answer = (row.get("result") or {}).get("answer")
    print()
    print("answer:")
    if isinstance(answer, str):
        print(answer)
    else:
        print_json(answer)


def _waiting_note(spec: str, agent: PlanExecuteAgent, query: str, run_id: str, err: TextIO) -> None:
    from pyworkflow.hooks import list_pending_hooks

    for hook in list_pending_hooks(run_id=run_id):
        payload = hook["payload"] if isinstance(hook["payload"], dict) else {}
        if hook["kind"] == "plan_approval":
            what = "its plan"
        else:
            what = (
                f"a call of {payload.get('tool', hook['name'])} (step {payload.get('step', '?')})"
            )
        print(f"\nrun {run_id} is waiting for approval of {what}: hook {hook['hook_id']}", file=err)
        print("  review:   pyworkflow approvals", file=err)
        print(f"  approve:  pyworkflow approve {hook['hook_id']}", file=err)
        print(f'  reject:   pyworkflow reject {hook["hook_id"]} --feedback "..."', file=err)
    print("once decided, the run continues in a worker, or here with:", file=err)
    for line in resume_hint(spec, agent, query, run_id):
        print(line, file=err)


# --- cancel -----------------------------------------------------------------------------------


def add_cancel_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    cancel = commands.add_parser("cancel", parents=[common], help="cancel a run")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.set_defaults(handler=cancel_command)


def cancel_command(args: argparse.Namespace) -> int:
    # recover=False: cancelling must not make this short-lived process adopt crashed runs.
    use_database(args.database_url, must_exist=True, recover=False)
    from pyworkflow.runs import get_run_sync

    handle = get_run_sync(args.run_id)
    status = asyncio.run(handle.status())
    if status in _FINISHED:
        raise CommandError(
            f"run {args.run_id!r} already {status}; nothing to cancel", Exit.CONFLICT
        )
    try:
        asyncio.run(handle.cancel())
    finally:
        from pyworkflow import shutdown

        shutdown()
    print(f"cancelled run {args.run_id}")
    return Exit.OK
