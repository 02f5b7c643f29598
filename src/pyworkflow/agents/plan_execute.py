"""`PlanExecuteAgent`: a strong planner, a cheap executor, a durable run.

Usable directly or through `@agent(pattern="plan_execute", ...)`. The agent object is the
run's code: a run records only the agent's name and the query, and any process that defines
(or can import) the agent can resume it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pyworkflow import engine
from pyworkflow.agents._run import AgentRun
from pyworkflow.agents.executor import Executor, StepOutcome
from pyworkflow.agents.models import ModelSpec, model_label, resolve_model
from pyworkflow.agents.plan import PlanStep, ToolSignature
from pyworkflow.agents.planner import Planner
from pyworkflow.agents.result import AgentResult
from pyworkflow.exceptions import ConfigurationError
from pyworkflow.workflow import Step, as_tool

if TYPE_CHECKING:
    from pyworkflow.runs import RunHandle

__all__ = ["PlanExecuteAgent", "agent_named"]


class _AgentRegistry:
    """Agents by name, filled as they are defined (the decorator or the constructor)."""

    def __init__(self) -> None:
        self.agents: dict[str, PlanExecuteAgent] = {}


_agents = _AgentRegistry()


def agent_named(name: str) -> PlanExecuteAgent:
    """The agent defined under `name` in this process (importing its module if needed)."""
    target = engine.resolve_target(name)
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, PlanExecuteAgent):
        raise ConfigurationError(f"{name!r} names a workflow, not an agent")
    return owner


class PlanExecuteAgent:
    """A plan-and-execute agent.

    Args:
        planner_model: Strong model that writes plans ('provider:model', a bare name such as
            'claude-opus-4-6', or a pydantic-ai Model).
        executor_model: Cheaper model that fills tool arguments, does reasoning steps and
            writes the answer. Defaults to the planner model.
        tools: `@step()` functions (or plain functions) the plan may call; no other tool can
            ever run.
        name: The agent's durable name; runs record it so another process can resume them.
            Defaults to `module:qualname` of the decorated function. Required when the agent
            is created directly and more than one agent in a module shares its tools.
        instructions: What the planner should know about the agent's job.
        enable_replanning: Replan after a step fails past its retries; else the run fails.
        require_approval: Suspend after planning until a human approves the plan.
        max_steps: Most steps a run executes (fan-out elements count one each) and a plan has.
        max_replans: Most replans after failures.
        max_parallel: Most steps running at once.
        max_tokens: Token limit across planner and executor; None for no limit. Like every
            budget it is checked before each model call and step: the call that reaches it
            completes, the next one does not start.
        max_planner_tokens: Token limit of the planner's calls alone; None for no limit.
        max_executor_tokens: Token limit of the executor's calls alone (steps and the answer);
            None for no limit.
        max_cost_usd: Cost limit in USD across planner and executor. Calls of unknown price
            (`usage.total.unpriced_requests`) cannot count towards it; priced ones still do.
        approval_timeout: How long a plan approval may wait ("24h", "30m", or seconds).
        answer: "synthesize" (an executor-model call writes the answer) or "last_step".
        max_plan_repairs: Rounds an invalid plan is sent back to the planner with its errors.
        replan_result_chars: Characters of each completed result shown to the planner when
            replanning.
        max_concurrent_runs: Most runs of this agent in progress at once across every process
            sharing the database; more wait in the agent's queue. None for no limit. A run
            holds its slot while it waits for approval too.
        max_runs_per_worker: Most runs of this agent in progress at once in any one process;
            spreads a burst of runs over the workers. None for no limit.
    """

    def __init__(
        self,
        *,
        planner_model: ModelSpec,
        executor_model: ModelSpec | None = None,
        tools: Sequence[object] = (),
        name: str | None = None,
        instructions: str = "",
        enable_replanning: bool = True,
        require_approval: bool = False,
        max_steps: int = 30,
        max_replans: int = 3,
        max_parallel: int = 8,
        max_tokens: int | None = None,
        max_planner_tokens: int | None = None,
        max_executor_tokens: int | None = None,
        max_cost_usd: float | None = None,
        approval_timeout: str | float = "24h",
        answer: Literal["synthesize", "last_step"] = "synthesize",
        max_plan_repairs: int = 2,
        replan_result_chars: int = 2000,
        max_rejections: int = 3,
        max_concurrent_runs: int | None = None,
        max_runs_per_worker: int | None = None,
    ) -> None:
        from pyworkflow.hooks import parse_duration

        self.tools: dict[str, Step[..., Any]] = {}
        for tool in map(as_tool, tools):
            if tool.name in self.tools:
                raise ConfigurationError(
                    f"two tools are named {tool.name!r}; give one a different @step(name=...)"
                )
            self.tools[tool.name] = tool
        for label, value in (("max_steps", max_steps), ("max_parallel", max_parallel)):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"{label} must be a whole number of at least 1, got {value!r}"
                )
        if not isinstance(max_replans, int) or max_replans < 0:
            raise ConfigurationError(f"max_replans must be 0 or more, got {max_replans!r}")
        for label, limit in (
            ("max_tokens", max_tokens),
            ("max_planner_tokens", max_planner_tokens),
            ("max_executor_tokens", max_executor_tokens),
            ("max_cost_usd", max_cost_usd),
        ):
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0
            ):
                raise ConfigurationError(
                    f"{label} must be a positive number or None, got {limit!r}"
                )
        if answer not in ("synthesize", "last_step"):
            raise ConfigurationError(f"answer must be 'synthesize' or 'last_step', got {answer!r}")
        self.planner_model = planner_model
        self.executor_model = executor_model if executor_model is not None else planner_model
        self.instructions = inspect.cleandoc(instructions) if instructions else ""
        self.enable_replanning = enable_replanning
        self.require_approval = require_approval
        self.max_steps = max_steps
        self.max_replans = max_replans
        self.max_parallel = max_parallel
        self.max_tokens = max_tokens
        self.max_planner_tokens = max_planner_tokens
        self.max_executor_tokens = max_executor_tokens
        self.max_cost_usd = max_cost_usd
        self.approval_timeout = parse_duration(approval_timeout)
        self.answer = answer
        self.replan_result_chars = replan_result_chars
        self.max_rejections = max_rejections
        self.planner = Planner(
            self.planner_model, instructions=self.instructions, max_repairs=max_plan_repairs
        )
        self.executor = Executor(self.executor_model, instructions=self.instructions)
        self.name = name or _default_name(self)
        engine.register_target(self.name, self._durable_body)
        self.queue = engine.declare_queue(
            engine.agent_queue(self.name, max_concurrent_runs, max_runs_per_worker)
        )
        _agents.agents[self.name] = self

    def __repr__(self) -> str:
        return f"<PlanExecuteAgent {self.name!r} tools={sorted(self.tools)}>"

    @contextlib.contextmanager
    def override(
        self, *, planner_model: ModelSpec | None = None, executor_model: ModelSpec | None = None
    ) -> Iterator[None]:
        """Use other models inside the block: scripted ones, to test an agent whose definition
        names real models without a key or a network.

        The swap is on this agent object, for every run this process executes inside the block;
        a run resumed after the block uses the models the agent is defined with.
        """
        saved = (self.planner_model, self.executor_model)
        if planner_model is not None:
            self.planner_model = self.planner.model = planner_model
        if executor_model is not None:
            self.executor_model = self.executor.model = executor_model
        try:
            yield
        finally:
            self.planner_model, self.executor_model = saved
            self.planner.model, self.executor.model = saved

    @property
    def planner_label(self) -> str:
        return model_label(self.planner_model)

    @property
    def executor_label(self) -> str:
        return model_label(self.executor_model)

    def signatures(self) -> list[ToolSignature]:
        return [ToolSignature(t.name, t.description, t.parameters) for t in self.tools.values()]

    def step_queue(self, tool: str | None) -> engine.QueueSpec:
        """The queue of plan steps calling `tool` (reasoning steps, `None`, share one)."""
        found = self.tools.get(tool) if tool is not None else None
        return found.queue if found is not None else engine.STEPS_QUEUE

    def check_models(self) -> None:
        """Resolve both models now, so a bad name or missing key fails before any spending."""
        resolve_model(self.planner_model)
        resolve_model(self.executor_model)

    # --- running -------------------------------------------------------------------------

    async def run(self, query: str, *, run_id: str | None = None) -> AgentResult:
        """Plan and execute `query` durably; return when the run finishes or waits for approval.

        A given `run_id` makes the call idempotent: calling again with it — in any process —
        returns that run's result, resuming it if it was interrupted, never starting another.
        """
        from pyworkflow.runs import start_and_wait

        self.check_models()
        result: AgentResult = await start_and_wait(
            self.name, run_id, (query,), {}, kind="agent", queue=self.queue
        )
        return result

    async def start(self, query: str, *, run_id: str | None = None) -> RunHandle:
        """Start a run of `query` and return its handle at once, without waiting for it.

        Where it executes follows `run_mode`: in this process ("direct"), or on whichever
        worker takes it from the agent's queue ("queue", "client"). A given `run_id` makes the
        call idempotent.
        """
        from pyworkflow.runs import RunHandle, submit_run

        self.check_models()
        return RunHandle(
            await submit_run(self.name, run_id, (query,), {}, kind="agent", queue=self.queue)
        )

    def start_sync(self, query: str, *, run_id: str | None = None) -> RunHandle:
        """Synchronous twin of `start`."""
        from pyworkflow.runs import run_coroutine_sync

        return run_coroutine_sync(self.start(query, run_id=run_id))

    def run_sync(self, query: str, *, run_id: str | None = None) -> AgentResult:
        """Synchronous twin of `run`."""
        from pyworkflow.runs import run_coroutine_sync

        return run_coroutine_sync(self.run(query, run_id=run_id))

    async def _durable_body(self, query: str) -> dict[str, Any]:
        run_id = engine.current_workflow_id()
        assert run_id is not None, "an agent's body runs inside its durable run"
        return await AgentRun(self, run_id, query).execute()

    # --- one step (inside the step's child workflow) ---------------------------------------

    async def execute_unit(self, unit: dict[str, Any]) -> StepOutcome:
        """Execute one plan step (or fan-out element) prepared by the run loop."""
        step = PlanStep(
            id=unit["step"]["step"],
            description=unit["step"]["description"],
            tool=unit["step"]["tool"],
            params=unit["step"].get("params", {}),
            depends_on=tuple(unit["step"].get("depends_on", ())),
            for_each=unit["step"].get("for_each"),
        )
        params: dict[str, Any] = unit["params"]
        inputs: dict[str, Any] = unit["inputs"]
        if step.tool is None:
            return await self.executor.reason(step.description, params, inputs)
        tool = self.tools.get(step.tool)
        if tool is None:  # validation makes this unreachable; kept as the last safety net
            raise ConfigurationError(
                f"tool {step.tool!r} is not one of this agent's tools: {', '.join(sorted(self.tools))}"
            )
        arguments, mode, usage = await self.executor.prepare_arguments(
            tool, step.description, params, inputs
        )
        if tool.requires_approval:
            from pyworkflow.agents._approval import approve_tool_call

            await approve_tool_call(unit, tool, arguments)
        key = f"{unit['run_id']}/v{unit['version']}/{unit['key']}"
        result = await tool.invoke(arguments, idempotency_key=key)
        return StepOutcome(result, arguments, mode, usage)


def _default_name(agent: PlanExecuteAgent) -> str:
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame and frame.f_back else None
    module = caller.f_globals.get("__name__", "__main__") if caller else "__main__"
    name = f"{module}:plan_execute[{','.join(sorted(agent.tools))}]"
    if name in _agents.agents:
        raise ConfigurationError(
            f"another agent in {module!r} has the same tools; pass name=... to tell them apart"
        )
    return name
