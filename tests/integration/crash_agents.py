"""An agent, its tools and its scripted models, for tests that kill and restart processes.

Imported by name (`crash_agents`) in every process of a crash test — the one that is killed,
the one that recovers and the test itself — so a run recorded by one is resumable by another.
Run as a program through `main()`: see `tests/support/processes.py`.

Every tool call and model call appends a line to the ledger file named by `CRASH_LEDGER`, once
when it starts and once when it finishes (fsync'd, so a SIGKILL cannot lose a written line):

    start|<pid>|<call key>|<what>|<arguments as JSON>
    done|<pid>|<call key>|<what>|<arguments as JSON>

For a tool call the key is the idempotency key PyWorkflow passes (`<run>/v<plan>/<label>`),
so the test counts, from outside, how often each call really ran. Model calls have no key of
their own; theirs names the kind of call and what it was about.

The plan is fixed and the models are deterministic functions of their prompts, so an
interrupted run must end with exactly the results of an uninterrupted one. Each result spells
out its own inputs, so results swapped between branches would show.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from pyworkflow import agent, step
from pyworkflow.testing import prompt_results

QUERY = "Gather a, b and c, fetch what a points to, and combine everything"

# Seconds each piece of work takes. Uneven on purpose: branches finish in a different order
# than they start, and a crash catches some finished and others in flight.
PLANNER_SECONDS = 0.5
ARGUMENTS_SECONDS = 0.3  # the executor model filling a tool's missing argument
REASONING_SECONDS = 0.2
ANSWER_SECONDS = 0.6
FETCH_SECONDS = (0.2, 1.0, 1.8)  # by fan-out element

PLAN: list[dict[str, Any]] = [
    {"step": 1, "description": "Gather a", "tool": "slow", "params": {"tag": "a", "seconds": 0.2}},
    {"step": 2, "description": "Gather b", "tool": "slow", "params": {"tag": "b", "seconds": 0.6}},
    {"step": 3, "description": "Gather c", "tool": "slow", "params": {"tag": "c", "seconds": 1.0}},
    {
        "step": 4,
        "description": "List what a points to",
        "tool": "expand",
        "params": {"topic": "$1"},
        "depends_on": [1],
    },
    {
        "step": 5,
        "description": "Fetch each item",
        "tool": "fetch",
        "for_each": "$4",
        "params": {"item": "${item}"},
        "depends_on": [4],
    },
    {
        "step": 6,
        "description": "Combine b and c",
        "tool": "combine",
        "params": {"left": "$2", "right": "$3"},
        "depends_on": [2, 3],
    },
    # Model-filled: `note` is missing, so the executor model supplies it, then the tool runs —
    # two recorded operations in one branch, running beside each other (DESIGN.md §7.2).
    {
        "step": 7,
        "description": "Annotate b",
        "tool": "annotate",
        "params": {"text": "$2"},
        "depends_on": [2],
    },
    {
        "step": 8,
        "description": "Annotate c",
        "tool": "annotate",
        "params": {"text": "$3"},
        "depends_on": [3],
    },
    {
        "step": 9,
        "description": "Summarise the fetched items",
        "tool": None,
        "params": {},
        "depends_on": [5],
    },
]


# --- the ledger ------------------------------------------------------------------------------


def _ledger(phase: str, key: str, what: str, arguments: dict[str, Any]) -> None:
    path = os.environ.get("CRASH_LEDGER")
    if not path:
        return
    line = f"{phase}|{os.getpid()}|{key}|{what}|{json.dumps(arguments, sort_keys=True)}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def _tracked(key: str, what: str, arguments: dict[str, Any], seconds: float) -> None:
    _ledger("start", key, what, arguments)
    await asyncio.sleep(seconds)
    _ledger("done", key, what, arguments)


# --- tools -----------------------------------------------------------------------------------


@step()
async def slow(tag: str, seconds: float, idempotency_key: str) -> str:
    """Gather one piece of information, slowly."""
    await _tracked(idempotency_key, "slow", {"tag": tag, "seconds": seconds}, seconds)
    return f"slow:{tag}"


@step()
async def expand(topic: str, idempotency_key: str) -> list[str]:
    """List the items a topic points to."""
    await _tracked(idempotency_key, "expand", {"topic": topic}, 0.0)
    return [f"{topic}/item{i}" for i in range(len(FETCH_SECONDS))]


@step()
async def fetch(item: str, idempotency_key: str) -> str:
    """Fetch one item."""
    index = int(item.rsplit("item", 1)[1])
    await _tracked(idempotency_key, "fetch", {"item": item}, FETCH_SECONDS[index])
    return f"fetched:{item}"


@step()
async def combine(left: str, right: str, idempotency_key: str) -> str:
    """Combine two results."""
    await _tracked(idempotency_key, "combine", {"left": left, "right": right}, 0.2)
    return f"({left})+({right})"


@step()
async def annotate(text: str, note: str, idempotency_key: str) -> str:
    """Attach a note to a text."""
    await _tracked(idempotency_key, "annotate", {"text": text, "note": note}, 0.3)
    return f"{text}#{note}"


def note_for(text: str) -> str:
    """The note the executor model writes for `text` (so a test can check a pairing)."""
    return f"note[{text}]"


# --- scripted models -------------------------------------------------------------------------


def _prompt(messages: list[ModelMessage]) -> str:
    return "\n".join(
        part.content
        for message in messages
        for part in getattr(message, "parts", ())
        if isinstance(getattr(part, "content", None), str)
    )


def _json_after(label: str, text: str, before: str | None = None) -> Any:
    start = text.index(label) + len(label)
    end = text.index(before, start) if before else len(text)
    return json.loads(text[start:end])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def _plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    prompt = _prompt(messages)
    await _tracked(f"model:plan:{_digest(prompt)}", "planner", {}, PLANNER_SECONDS)
    return ModelResponse(parts=[TextPart("```json\n" + json.dumps(PLAN) + "\n```")])


async def _execute(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    prompt = _prompt(messages)
    if info.function_tools:  # fill the missing argument of the one tool offered
        known = _json_after("Arguments already known: ", prompt, "\n\nResults")
        text = known["text"]
        await _tracked(f"model:arguments:{text}", "executor", {"text": text}, ARGUMENTS_SECONDS)
        tool = info.function_tools[0].name
        return ModelResponse(parts=[ToolCallPart(tool, {"note": note_for(text)})])
    if "Results this step depends on:" in prompt:  # the reasoning step
        items = prompt_results(prompt)["$5"]
        await _tracked("model:reasoning", "executor", {"items": items}, REASONING_SECONDS)
        return ModelResponse(parts=[TextPart("summary:" + "+".join(items))])
    results = prompt_results(prompt)
    await _tracked("model:answer", "executor", {}, ANSWER_SECONDS)
    return ModelResponse(parts=[TextPart(answer_for(results))])


def answer_for(results: dict[str, Any]) -> str:
    """The answer the executor model writes for the results it is shown."""
    return f"answer over {len(results)} results: {_digest(json.dumps(results, sort_keys=True))}"


PLANNER = FunctionModel(_plan, model_name="crash-planner")
EXECUTOR = FunctionModel(_execute, model_name="crash-executor")


@agent(
    pattern="plan_execute",
    planner_model=PLANNER,
    executor_model=EXECUTOR,
    tools=[slow, expand, fetch, combine, annotate],
    enable_replanning=False,
)
async def crash_agent(query: str) -> None:
    """Gathers, fetches and combines; every call is counted in a ledger."""


# --- an agent that waits at a gate ----------------------------------------------------------

GATED_QUERY = "Wait at the gate"
GATED_PLAN: list[dict[str, Any]] = [
    {
        "step": 1,
        "description": "Wait at the gate",
        "tool": "wait_at_gate",
        "params": {"name": "open"},
    },
]


@step()
async def wait_at_gate(name: str, idempotency_key: str) -> str:
    """Wait until the gate file `name` exists in CRASH_GATE_DIR."""
    _ledger("start", idempotency_key, "wait_at_gate", {"name": name})
    gate = Path(os.environ["CRASH_GATE_DIR"]) / name
    while not gate.exists():
        await asyncio.sleep(0.02)
    _ledger("done", idempotency_key, "wait_at_gate", {"name": name})
    return f"passed:{name}"


async def _gated_plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(json.dumps(GATED_PLAN))])


@agent(
    pattern="plan_execute",
    planner_model=FunctionModel(_gated_plan, model_name="gate-planner"),
    executor_model=EXECUTOR,
    tools=[wait_at_gate],
    answer="last_step",
)
async def gated_agent(query: str) -> None:
    """Waits until the test opens the gate."""


AGENTS = {"crash": (crash_agent, QUERY), "gated": (gated_agent, GATED_QUERY)}


# --- reading the ledger (for the tests) ------------------------------------------------------


def read_ledger(path: Path) -> list[tuple[str, int, str, str]]:
    """The ledger's lines as (phase, pid, key, what)."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        phase, pid, key, what, _ = raw.split("|", 4)
        lines.append((phase, int(pid), key, what))
    return lines


# --- the program run in subprocesses ---------------------------------------------------------


def main(argv: list[str]) -> None:
    """The program of a test's subprocess. The database comes from PYWORKFLOW_DATABASE_URL.

    `run RUN_ID OUT [AGENT]`: run the agent ("crash" or "gated") as RUN_ID (or join that run).
    `takeover RUN_ID OUT`: start the runtime — which takes over dead processes' runs — and
    wait for RUN_ID; writes OUT.ready with the executor id once the runtime is up.
    `watch RUN_ID OUT`: with no runtime, read the run's events while it goes, then wait for it.

    Writes a JSON report to OUT. With CRASH_GO_FILE set, it begins only once that file exists.
    """
    import time

    import pyworkflow
    from pyworkflow import engine

    mode, run_id, out, *rest = argv
    chosen_agent, query = AGENTS[rest[0] if rest else "crash"]
    # A process started ahead of its turn (its imports take seconds on a busy machine) waits
    # here for the test to say go.
    go = os.environ.get("CRASH_GO_FILE")
    while go and not Path(go).exists():
        time.sleep(0.01)

    async def wait_for_run() -> Any:
        handle = await pyworkflow.get_run(run_id)
        return await handle.wait(timeout=240)

    report: dict[str, Any] = {
        "pid": os.getpid(),
        "mode": mode,
        "module": __file__,
        "began_at": time.time(),
    }
    if mode == "run":
        result = chosen_agent.run_sync(query, run_id=run_id)
    elif mode == "takeover":
        runtime = engine.get_runtime()
        Path(out + ".ready").write_text(runtime.executor_id)
        result = asyncio.run(wait_for_run())
    elif mode == "watch":
        snapshots: list[list[list[Any]]] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            events = pyworkflow.get_events_sync(run_id)
            snapshots.append([[e.seq, e.type.value] for e in events])
            if events and events[-1].type.value in ("AGENT_COMPLETED", "AGENT_FAILED"):
                break
            time.sleep(0.05)
        report["snapshots"] = snapshots
        result = asyncio.run(wait_for_run())
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    report["result"] = result.model_dump(mode="json")
    runtime = engine.active_runtime()
    report["executor_id"] = runtime.executor_id if runtime else None
    report["events"] = [e.model_dump(mode="json") for e in pyworkflow.get_events_sync(run_id)]
    pyworkflow.shutdown()
    Path(out).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
