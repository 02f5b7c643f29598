"""Running plan-and-execute agents end to end, with scripted planner and executor models.

Each test defines its own tools and agent, runs it on a throwaway SQLite database (the
`runtime` fixture) and checks what a user sees: the result, the execution log, the events and
what the tools and models were asked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from pyworkflow import EventType, get_events, get_events_sync, get_run, step
from pyworkflow.agents import AgentResult, PlanExecuteAgent
from pyworkflow.exceptions import RunNotFoundError
from pyworkflow.testing import ModelScript, scripted_executor, scripted_planner

pytestmark = pytest.mark.usefixtures("runtime")


def make_agent(
    plan: list[dict[str, Any]],
    tools: list[Any],
    *,
    executor: ModelScript | FunctionModel | None = None,
    **options: Any,
) -> tuple[PlanExecuteAgent, ModelScript, ModelScript | None]:
    """An agent with a scripted planner answering `plan`, under a name of its own."""
    planner = scripted_planner(plan)
    script = executor if isinstance(executor, ModelScript) else None
    if executor is None:
        script = scripted_executor()
    model = script.model if script is not None else executor
    made = PlanExecuteAgent(
        planner_model=planner.model,
        executor_model=model,
        tools=tools,
        name=f"tests.execution:{uuid.uuid4().hex}",
        **options,
    )
    return made, planner, script


class Clock:
    """Start and end times of tool calls, by label."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[float, float]] = {}

    async def hold(self, label: str, seconds: float) -> str:
        start = time.monotonic()
        await asyncio.sleep(seconds)
        self.spans[label] = (start, time.monotonic())
        return label


# --- planning and the result ------------------------------------------------------------------


async def test_the_planners_plan_runs_and_the_result_reports_it() -> None:
    @step()
    def search_web(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    plan = [
        {"step": 1, "description": "Search", "tool": "search_web", "params": {"query": "AI"}},
        {"step": 2, "description": "Summarise", "tool": None, "depends_on": [1]},
    ]
    executor = scripted_executor(reasoning="a summary", answer="the answer")
    agent, planner, _ = make_agent(plan, [search_web], executor=executor)

    result = await agent.run("Research AI", run_id="run-result-fields")

    assert isinstance(result, AgentResult)
    assert result.run_id == "run-result-fields"
    assert result.status == "completed"
    assert result.error is None
    assert [(s["step"], s["tool"], s["depends_on"]) for s in result.plan] == [
        (1, "search_web", []),
        (2, None, [1]),
    ]
    assert [(s.label, s.status, s.result) for s in result.executed_steps] == [
        ("1", "completed", "results for AI"),
        ("2", "completed", "a summary"),
    ]
    assert result.answer == "the answer"
    # The planner saw the query and was asked once; its tokens are counted apart.
    assert planner.count() == 1
    assert "Research AI" in planner.calls[0].prompt
    assert result.usage.planner.requests == 1
    assert result.usage.planner.total_tokens > 0
    assert result.usage.executor.requests == 2  # the reasoning step and the answer
    assert result.usage.executor.total_tokens > 0
    assert result.usage.total.total_tokens == (
        result.usage.planner.total_tokens + result.usage.executor.total_tokens
    )


async def test_answer_last_step_returns_the_last_result_without_a_model_call() -> None:
    @step()
    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    plan = [
        {"step": 1, "description": "Double 3", "tool": "double", "params": {"x": 3}},
        {"step": 2, "description": "Double again", "tool": "double", "params": {"x": "$1"}},
    ]
    agent, _, executor = make_agent(plan, [double], answer="last_step")

    result = await agent.run("Quadruple 3")

    assert result.answer == 12
    assert executor is not None and executor.count() == 0


# --- direct and model-filled steps --------------------------------------------------------------


class ArgumentsModel:
    """An executor model that fills arguments from a list of replies, recording the offers."""

    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = list(replies)
        self.offers: list[list[str]] = []
        self.prompts: list[str] = []
        self.model = FunctionModel(self._respond, model_name="arguments")

    def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = "\n".join(
            p.content
            for m in messages
            for p in getattr(m, "parts", ())
            if isinstance(getattr(p, "content", None), str)
        )
        if not info.function_tools:
            return ModelResponse(parts=[TextPart("answer")])
        self.offers.append([t.name for t in info.function_tools])
        self.prompts.append(prompt)
        reply = self.replies[min(len(self.offers), len(self.replies)) - 1]
        return ModelResponse(parts=[ToolCallPart(info.function_tools[0].name, reply)])


def counting_tools() -> tuple[Any, Any, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    @step()
    def list_companies(region: str) -> list[str]:
        """List the companies of a region."""
        calls.append({"tool": "list_companies", "region": region})
        return ["Acme", "Globex"]

    @step()
    def top_n(names: list[str], count: int) -> list[str]:
        """The first `count` names."""
        calls.append({"tool": "top_n", "names": names, "count": count})
        return names[:count]

    return list_companies, top_n, calls


async def test_complete_params_call_the_tool_directly_incomplete_ones_ask_the_executor() -> None:
    list_companies, top_n, calls = counting_tools()
    plan = [
        {"step": 1, "description": "List", "tool": "list_companies", "params": {"region": "EU"}},
        # `count` is missing: only a model reading the description can supply it.
        {"step": 2, "description": "Keep the top one", "tool": "top_n",
         "params": {"names": "$1"}, "depends_on": [1]},
    ]  # fmt: skip
    executor = ArgumentsModel({"count": "1"})
    agent, _, _ = make_agent(plan, [list_companies, top_n], executor=executor.model)

    result = await agent.run("Top EU company")

    assert result.status == "completed", result.error
    modes = {s.label: s.mode for s in result.executed_steps}
    assert modes == {"1": "direct", "2": "model"}
    # Only the incomplete step asked the model, and it was offered exactly its own tool.
    assert executor.offers == [["top_n"]]
    assert "Keep the top one" in executor.prompts[0]
    assert "Acme" in executor.prompts[0]  # the dependency's result is shown to the model
    # The model's "1" was validated and coerced to the int the signature asks for.
    assert calls[1] == {"tool": "top_n", "names": ["Acme", "Globex"], "count": 1}
    assert result.executed_steps[1].arguments == {"names": ["Acme", "Globex"], "count": 1}
    assert result.executed_steps[1].result == ["Acme"]


async def test_invalid_model_arguments_get_one_corrective_retry() -> None:
    list_companies, top_n, calls = counting_tools()
    plan = [
        {"step": 1, "description": "List", "tool": "list_companies", "params": {"region": "EU"}},
        {"step": 2, "description": "Keep the top one", "tool": "top_n",
         "params": {"names": "$1"}, "depends_on": [1]},
    ]  # fmt: skip
    executor = ArgumentsModel({"count": "many"}, {"count": 1})
    agent, _, _ = make_agent(plan, [list_companies, top_n], executor=executor.model)

    result = await agent.run("Top EU company")

    assert result.status == "completed", result.error
    assert len(executor.offers) == 2
    # The retry tells the model what was wrong with its arguments.
    assert "count" in executor.prompts[1] and "'many'" in executor.prompts[1]
    assert [c["tool"] for c in calls] == ["list_companies", "top_n"]
    assert calls[1]["count"] == 1


async def test_arguments_still_invalid_after_the_retry_fail_the_step() -> None:
    list_companies, top_n, calls = counting_tools()
    plan = [
        {"step": 1, "description": "List", "tool": "list_companies", "params": {"region": "EU"}},
        {"step": 2, "description": "Keep the top one", "tool": "top_n",
         "params": {"names": "$1"}, "depends_on": [1]},
    ]  # fmt: skip
    executor = ArgumentsModel({"count": "many"})
    agent, _, _ = make_agent(
        plan, [list_companies, top_n], executor=executor.model, enable_replanning=False
    )

    result = await agent.run("Top EU company")

    assert result.status == "failed"
    assert len(executor.offers) == 2  # the first try and one corrective retry, no more
    assert "top_n" in (result.error or "") and "count" in (result.error or "")
    assert [c["tool"] for c in calls] == ["list_companies"]  # top_n never ran
    failed = [s for s in result.executed_steps if s.status == "failed"]
    assert [s.label for s in failed] == ["2"]


async def test_a_reasoning_step_answers_from_its_inputs_and_json_becomes_data() -> None:
    seen: list[str] = []

    @step()
    def shout(word: str) -> str:
        """Upper-case a word."""
        seen.append(word)
        return word.upper()

    plan = [
        {"step": 1, "description": "Name two colours", "tool": None, "params": {"hint": "sky"}},
        {"step": 2, "description": "Shout each", "tool": "shout", "for_each": "$1",
         "params": {"word": "$item"}},
    ]  # fmt: skip
    executor = scripted_executor(reasoning='["blue", "green"]')
    agent, _, _ = make_agent(plan, [shout], executor=executor, answer="last_step")

    result = await agent.run("Colours")

    assert result.status == "completed", result.error
    assert executor is not None
    reasoning = [c for c in executor.calls if c.kind == "reasoning"]
    assert len(reasoning) == 1
    assert "Name two colours" in reasoning[0].prompt and "sky" in reasoning[0].prompt
    assert result.executed_steps[0].mode == "reasoning"
    assert result.executed_steps[0].result == ["blue", "green"]
    assert sorted(seen) == ["blue", "green"]
    assert result.answer == ["BLUE", "GREEN"]


# --- fan-out and references -------------------------------------------------------------------


async def test_for_each_fans_out_and_keeps_the_element_order() -> None:
    @step()
    def companies() -> list[str]:
        """The companies."""
        return ["OpenAI", "Anthropic", "Google DeepMind"]

    @step()
    async def revenue(company: str) -> str:
        """A company's revenue."""
        # The first element finishes last, so completion order differs from element order.
        await asyncio.sleep({"OpenAI": 0.25, "Anthropic": 0.1, "Google DeepMind": 0.02}[company])
        return f"{company}: $1B"

    plan = [
        {"step": 1, "description": "List companies", "tool": "companies"},
        {"step": 2, "description": "Revenue of each", "tool": "revenue", "for_each": "$1",
         "params": {"company": "${item}"}},
    ]  # fmt: skip
    agent, _, _ = make_agent(plan, [companies, revenue], answer="last_step")

    result = await agent.run("Revenues")

    assert result.status == "completed", result.error
    assert result.answer == ["OpenAI: $1B", "Anthropic: $1B", "Google DeepMind: $1B"]
    fan_out = {s.label: (s.item, s.arguments) for s in result.executed_steps if s.step == 2}
    assert fan_out == {
        "2a": (0, {"company": "OpenAI"}),
        "2b": (1, {"company": "Anthropic"}),
        "2c": (2, {"company": "Google DeepMind"}),
    }


async def test_for_each_over_a_written_list_calls_the_tool_once_per_element_at_once() -> None:
    clock = Clock()

    @step()
    async def get_quote(ticker: str) -> str:
        """A ticker's price."""
        return await clock.hold(ticker, 0.2)

    plan = [{"step": 1, "tool": "get_quote", "params": {"ticker": "$item"},
             "for_each": ["NVDA", "MSFT", "AMD"]}]  # fmt: skip
    agent, _, _ = make_agent(plan, [get_quote], answer="last_step")

    result = await agent.run("Quotes")

    assert result.status == "completed", result.error
    assert result.answer == ["NVDA", "MSFT", "AMD"]
    assert sorted(s.label for s in result.executed_steps) == ["1a", "1b", "1c"]
    starts = [start for start, _ in clock.spans.values()]
    ends = [end for _, end in clock.spans.values()]
    assert max(starts) < min(ends)  # all three were in flight together


async def test_references_and_interpolation_reach_the_tools() -> None:
    received: list[dict[str, Any]] = []

    @step()
    def profile() -> dict[str, Any]:
        """A profile."""
        return {"name": "Ada", "langs": ["python", "c"], "age": 36}

    @step()
    def record(first_lang: str, age: int, note: str, whole: dict[str, Any]) -> str:
        """Record values."""
        received.append({"first_lang": first_lang, "age": age, "note": note, "whole": whole})
        return "ok"

    plan = [
        {"step": 1, "description": "Get the profile", "tool": "profile"},
        {"step": 2, "description": "Record", "tool": "record", "params": {
            "first_lang": "$1.langs[0]",
            "age": "$1.age",
            "note": "Hello ${1.name}, you know ${1.langs}; costs $5",
            "whole": "$1",
        }},
    ]  # fmt: skip
    agent, _, _ = make_agent(plan, [profile, record])

    result = await agent.run("Record Ada")

    assert result.status == "completed", result.error
    assert received == [
        {
            "first_lang": "python",
            "age": 36,
            "note": 'Hello Ada, you know ["python", "c"]; costs $5',
            "whole": {"name": "Ada", "langs": ["python", "c"], "age": 36},
        }
    ]
    # The reference made step 2 depend on step 1 without a depends_on.
    assert result.plan[1]["depends_on"] == [1]


# --- parallelism and scheduling -----------------------------------------------------------------


def sleeping_tool(clock: Clock) -> Any:
    @step()
    async def work(label: str, seconds: float) -> str:
        """Work for a while."""
        return await clock.hold(label, seconds)

    return work


def independent_plan(seconds: float) -> list[dict[str, Any]]:
    return [
        {"step": n, "description": f"Work {n}", "tool": "work",
         "params": {"label": str(n), "seconds": seconds}}
        for n in (1, 2, 3)
    ]  # fmt: skip


async def test_independent_steps_run_at_the_same_time() -> None:
    clock = Clock()
    agent, _, _ = make_agent(independent_plan(0.3), [sleeping_tool(clock)], answer="last_step")

    result = await agent.run("Work")

    assert result.status == "completed", result.error
    starts = [s for s, _ in clock.spans.values()]
    ends = [e for _, e in clock.spans.values()]
    assert len(clock.spans) == 3
    assert max(starts) < min(ends), f"the three calls did not overlap: {clock.spans}"


async def test_max_parallel_one_runs_steps_one_after_another() -> None:
    clock = Clock()
    agent, _, _ = make_agent(
        independent_plan(0.1), [sleeping_tool(clock)], answer="last_step", max_parallel=1
    )

    result = await agent.run("Work")

    assert result.status == "completed", result.error
    spans = sorted(clock.spans.values())
    assert len(spans) == 3
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= end, f"two calls overlapped with max_parallel=1: {clock.spans}"


async def test_a_step_starts_when_its_own_dependencies_finish() -> None:
    clock = Clock()
    plan = [
        {"step": 1, "description": "Slow branch", "tool": "work",
         "params": {"label": "slow", "seconds": 0.8}},
        {"step": 2, "description": "Fast branch", "tool": "work",
         "params": {"label": "fast", "seconds": 0.05}},
        {"step": 3, "description": "After the fast branch", "tool": "work",
         "params": {"label": "follow-up", "seconds": 0.05}, "depends_on": [2]},
        {"step": 4, "description": "After both", "tool": "work",
         "params": {"label": "join", "seconds": 0.01}, "depends_on": [1, 3]},
    ]  # fmt: skip
    agent, _, _ = make_agent(plan, [sleeping_tool(clock)], answer="last_step")

    result = await agent.run("Work")

    assert result.status == "completed", result.error
    slow_end = clock.spans["slow"][1]
    follow_end = clock.spans["follow-up"][1]
    # Eager, not in waves: step 3 ran while the unrelated slow step was still going.
    assert follow_end < slow_end, clock.spans
    assert clock.spans["join"][0] >= slow_end


# --- events -----------------------------------------------------------------------------------


async def test_events_are_complete_numbered_and_in_order() -> None:
    list_companies, top_n, _ = counting_tools()
    plan = [
        {"step": 1, "description": "List", "tool": "list_companies", "params": {"region": "EU"}},
        {"step": 2, "description": "Keep the top one", "tool": "top_n",
         "params": {"names": "$1"}, "depends_on": [1]},
    ]  # fmt: skip
    executor = ArgumentsModel({"count": 1})
    agent, _, _ = make_agent(plan, [list_companies, top_n], executor=executor.model)

    result = await agent.run("Top EU company")
    events = await get_events(result.run_id)

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.run_id == result.run_id and e["run_id"] == result.run_id for e in events)
    types = [e.type for e in events]
    assert types[0] is EventType.AGENT_STARTED
    assert types[-1] is EventType.AGENT_COMPLETED
    assert types.count(EventType.AGENT_PLAN_GENERATED) == 1
    assert types.count(EventType.AGENT_EXECUTION_COMPLETED) == 1
    assert types.index(EventType.AGENT_PLAN_GENERATED) < types.index(EventType.AGENT_STEP_STARTED)
    assert types[-2] is EventType.AGENT_EXECUTION_COMPLETED

    started = events[0].payload
    assert started["query"] == "Top EU company"
    assert started["planner_model"] and started["executor_model"]

    generated = next(e for e in events if e.type is EventType.AGENT_PLAN_GENERATED)
    assert [s["step"] for s in generated["plan"]] == [1, 2]
    assert generated["planner_tokens"] == result.usage.planner.total_tokens > 0

    by_step: dict[int, dict[EventType, Any]] = {}
    for event in events:
        if event.type in (EventType.AGENT_STEP_STARTED, EventType.AGENT_STEP_COMPLETED):
            by_step.setdefault(event["step"], {})[event.type] = event
    assert sorted(by_step) == [1, 2]
    for number, pair in by_step.items():
        began, ended = pair[EventType.AGENT_STEP_STARTED], pair[EventType.AGENT_STEP_COMPLETED]
        assert began.seq < ended.seq
        assert began["description"] == plan[number - 1]["description"]
        assert began["tool"] == plan[number - 1]["tool"]
    assert by_step[1][EventType.AGENT_STEP_COMPLETED]["result"] == ["Acme", "Globex"]
    assert by_step[1][EventType.AGENT_STEP_COMPLETED]["executor_tokens"] == 0  # direct
    assert by_step[2][EventType.AGENT_STEP_COMPLETED]["executor_tokens"] > 0  # model-filled

    finished = next(e for e in events if e.type is EventType.AGENT_EXECUTION_COMPLETED)
    assert (finished["total_steps"], finished["successful"], finished["failed"]) == (2, 2, 0)
    assert finished["replans"] == 0
    assert events[-1]["answer"] == result.answer


# --- run ids, lookups and the sync twin ---------------------------------------------------------


async def test_the_same_run_id_returns_the_same_result_without_running_again() -> None:
    calls: list[str] = []

    @step()
    def side_effect(text: str) -> str:
        """Do something once."""
        calls.append(text)
        return text

    plan = [{"step": 1, "description": "Act", "tool": "side_effect", "params": {"text": "x"}}]
    agent, planner, _ = make_agent(plan, [side_effect])

    first = await agent.run("Act once", run_id="run-idempotent")
    second = await agent.run("Act once", run_id="run-idempotent")

    assert second == first
    assert calls == ["x"]
    assert planner.count() == 1
    events = await get_events("run-idempotent")
    assert [e.type for e in events].count(EventType.AGENT_STARTED) == 1


def test_run_sync_and_the_lookups_from_a_synchronous_caller() -> None:
    @step()
    def echo(text: str) -> str:
        """Echo."""
        return text

    plan = [{"step": 1, "description": "Echo", "tool": "echo", "params": {"text": "hi"}}]
    agent, _, _ = make_agent(plan, [echo], answer="last_step")

    result = agent.run_sync("Echo hi")

    assert result.status == "completed" and result.answer == "hi"
    events = get_events_sync(result.run_id)
    assert events[-1].type is EventType.AGENT_COMPLETED


async def test_get_run_and_get_events_find_a_finished_run() -> None:
    @step()
    def echo(text: str) -> str:
        """Echo."""
        return text

    plan = [{"step": 1, "description": "Echo", "tool": "echo", "params": {"text": "hi"}}]
    agent, _, _ = make_agent(plan, [echo])
    result = await agent.run("Echo hi")

    handle = await get_run(result.run_id)

    assert handle.run_id == result.run_id
    assert await handle.status() == "completed"
    assert await handle.result() == result
    assert await handle.wait(timeout=5) == result
    assert [e.seq for e in await handle.events()] == [
        e.seq for e in await get_events(result.run_id)
    ]
    with pytest.raises(RunNotFoundError, match="no-such-run"):
        await get_run("no-such-run")


# --- tools: sync, async, retries, timeouts ------------------------------------------------------


async def test_sync_and_async_tools_both_run() -> None:
    @step()
    def sync_tool(x: int) -> int:
        """Add one, synchronously."""
        return x + 1

    @step()
    async def async_tool(x: int) -> int:
        """Add ten, asynchronously."""
        await asyncio.sleep(0.01)
        return x + 10

    plan = [
        {"step": 1, "description": "Sync", "tool": "sync_tool", "params": {"x": 1}},
        {"step": 2, "description": "Async", "tool": "async_tool", "params": {"x": "$1"}},
    ]
    agent, _, _ = make_agent(plan, [sync_tool, async_tool], answer="last_step")

    result = await agent.run("Add")

    assert [s.result for s in result.executed_steps] == [2, 12]
    assert result.answer == 12


async def test_a_step_with_retries_is_retried_until_it_succeeds() -> None:
    attempts: list[float] = []

    @step(retries=2, retry_interval=0.05, backoff=1.0)
    def flaky(text: str) -> str:
        """Fail twice, then work."""
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)} failed")
        return text.upper()

    plan = [{"step": 1, "description": "Flaky", "tool": "flaky", "params": {"text": "ok"}}]
    agent, _, _ = make_agent(plan, [flaky], answer="last_step", enable_replanning=False)

    result = await agent.run("Try")

    assert result.status == "completed", result.error
    assert result.answer == "OK"
    assert len(attempts) == 3
    assert [s.status for s in result.executed_steps] == ["completed"]


async def test_a_step_that_exhausts_its_retries_fails_with_its_own_error() -> None:
    attempts: list[int] = []

    @step(retries=1, retry_interval=0.05)
    def broken() -> str:
        """Always fail."""
        attempts.append(1)
        raise ConnectionError("upstream is down")

    plan = [{"step": 1, "description": "Broken", "tool": "broken"}]
    agent, _, _ = make_agent(plan, [broken], enable_replanning=False)

    result = await agent.run("Try")

    assert result.status == "failed"
    assert len(attempts) == 2
    assert "ConnectionError: upstream is down (after 2 attempts)" in (result.error or "")
    events = await get_events(result.run_id)
    failed = [e for e in events if e.type is EventType.AGENT_STEP_FAILED]
    assert len(failed) == 1 and "upstream is down" in failed[0]["error"]
    assert events[-1].type is EventType.AGENT_FAILED


async def test_a_step_past_its_timeout_fails() -> None:
    @step(timeout=0.2)
    async def slow() -> str:
        """Take too long."""
        await asyncio.sleep(3)
        return "late"

    plan = [{"step": 1, "description": "Slow", "tool": "slow"}]
    agent, _, _ = make_agent(plan, [slow], enable_replanning=False)

    started = time.monotonic()
    result = await agent.run("Wait")

    assert time.monotonic() - started < 2.5  # the attempt was cut off, not waited out
    assert result.status == "failed"
    assert "TimeoutError" in (result.error or "") and "0.2s" in (result.error or "")
    assert result.error_type == "StepFailedError"
    assert [s.status for s in result.executed_steps] == ["failed"]
    events = await get_events(result.run_id)
    assert events[-1].type is EventType.AGENT_FAILED


def test_scripted_plan_json_is_what_the_result_reports() -> None:
    """The plan in the result is the planner's JSON shape, ready to show or to store."""

    @step()
    def echo(text: str) -> str:
        """Echo."""
        return text

    plan = [{"step": 1, "description": "Echo", "tool": "echo", "params": {"text": "hi"}}]
    agent, _, _ = make_agent(plan, [echo])

    result = agent.run_sync("Echo")

    assert json.loads(json.dumps(result.plan)) == [{**plan[0], "depends_on": []}]


def test_override_swaps_the_models_for_the_block_only() -> None:
    agent = PlanExecuteAgent(
        planner_model="claude-opus-4-6", name=f"tests.execution:{uuid.uuid4().hex}"
    )
    planner = scripted_planner([{"step": 1, "description": "Think", "tool": None}])
    with pytest.raises(RuntimeError), agent.override(planner_model=planner.model):
        assert agent.planner.model is planner.model and agent.planner_label == "function:planner"
        assert agent.executor.model == "claude-opus-4-6"  # not overridden
        raise RuntimeError("the block fails")
    assert agent.planner_model == agent.planner.model == "claude-opus-4-6"
