"""What a run of an agent returns: the plan, the execution log, the answer and the usage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["AgentResult", "ExecutedStep", "RunStatus", "TokenUsage", "Usage"]

RunStatus = Literal["queued", "running", "waiting_for_approval", "completed", "failed", "cancelled"]


class TokenUsage(BaseModel):
    """Tokens and cost of a group of model calls.

    `cost_usd` is None when any call's price is unknown (`unpriced_requests` counts them):
    an unknown price is never counted as zero.
    """

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0
    unpriced_requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        return TokenUsage(
            requests=self.requests + other.requests,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=cost,
            unpriced_requests=self.unpriced_requests + other.unpriced_requests,
        )


class Usage(BaseModel):
    """Model usage of a run, planner and executor apart."""

    model_config = ConfigDict(frozen=True)

    planner: TokenUsage = TokenUsage()
    executor: TokenUsage = TokenUsage()

    @property
    def total(self) -> TokenUsage:
        return self.planner + self.executor

    def add(self, role: Literal["planner", "executor"], usage: TokenUsage) -> Usage:
        if role == "planner":
            return Usage(planner=self.planner + usage, executor=self.executor)
        return Usage(planner=self.planner, executor=self.executor + usage)


class ExecutedStep(BaseModel):
    """One executed plan step (or one element of a `for_each` fan-out)."""

    step: int
    label: str
    item: int | None = None
    description: str
    tool: str | None
    arguments: dict[str, Any] | None = None
    result: Any = None
    status: Literal["completed", "failed"]
    error: str | None = None
    mode: Literal["direct", "model", "reasoning", "fan_out"]
    executor_tokens: int = 0
    plan_version: int = 1
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class AgentResult(BaseModel):
    """The outcome of `agent.run()`.

    Attributes:
        run_id: The durable run's id; pass it to `get_run()` / `get_events()` from any process.
        status: `completed`, `failed`, `waiting_for_approval` (see `hook_id`), `running`
            or `cancelled`.
        plan: The plan in force at the end (a list of step dicts in the planner's format).
        plans: Every plan version, oldest first (replanning adds versions).
        executed_steps: The execution log, in completion order.
        answer: The final output.
        usage: Planner and executor tokens and cost, apart; `usage.total` sums them.
        error: Why the run failed, when it did.
    """

    run_id: str
    status: RunStatus
    query: str = ""
    plan: list[dict[str, Any]] = []
    plans: list[list[dict[str, Any]]] = []
    executed_steps: list[ExecutedStep] = []
    answer: Any = None
    usage: Usage = Usage()
    replans: int = 0
    error: str | None = None
    error_type: str | None = None
    hook_id: str | None = None
