"""OpenTelemetry spans of agent runs, derived from their event log.

```python
from pyworkflow.telemetry import export_run
export_run(result.run_id)                       # to the global tracer provider
```

A run's events already say when everything happened, so spans are built from them rather
than from hooks inside the engine: the same spans come out of a live run (feed events to a
`SpanRecorder` as they arrive, as `pyworkflow run --otel` does), of a run recovered after a
crash (no duplicate spans for replayed work: events are written once), and of a run finished
long ago (`export_run`, `pyworkflow show RUN_ID --otel`).

Spans, following the OpenTelemetry GenAI conventions where they apply:

```
invoke_agent {agent}                 the run                      gen_ai.operation.name=invoke_agent
├── plan v1                          planning (repairs included)  pyworkflow.plan.*
│   └── chat {planner model}         the planner's model call     gen_ai.operation.name=chat
├── approval {hook id}               waiting for a human          pyworkflow.approval.decision
├── execute_tool {tool}              one step (or fan-out item)   gen_ai.tool.name, pyworkflow.step.*
│   └── chat {executor model}        when the executor filled arguments or reasoned
└── chat {executor model}            the final answer
```

Events record tokens per step and per plan, not per request, and not the time of each model
request within a step: a model-call span covers its step, and carries `pyworkflow.usage.tokens`
(input and output tokens apart, `gen_ai.usage.*`, are on the run span, from the final usage).
Queries, arguments and results are not recorded unless `capture_content=True`.

Needs the `otel` extra: `pip install "pyworkflow[otel]"`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - opentelemetry-api comes with the engine today
    raise ImportError(
        'pyworkflow.telemetry needs OpenTelemetry: pip install "pyworkflow[otel]"'
    ) from exc

from pyworkflow.events import Event, EventType, get_events_sync
from pyworkflow.exceptions import ConfigurationError

__all__ = ["SpanRecorder", "export_run", "otel_tracer_provider"]

_PLANNING_TRIGGERS_SKIPPED = (EventType.AGENT_PLAN_GENERATED, EventType.AGENT_REPLANNING)


def _ns(timestamp: float) -> int:
    return int(timestamp * 1_000_000_000)


def _model_attributes(label: str, role: str) -> dict[str, Any]:
    provider, _, model = label.partition(":")
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider if model else "unknown",
        "gen_ai.request.model": model or label,
        "pyworkflow.model.role": role,
    }


def _content(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)


class SpanRecorder:
    """Turns a run's events, fed in order, into spans.

    Args:
        tracer_provider: Where spans go; the global provider by default.
        capture_content: Also record the query, step results and the answer (off by default:
            they may hold personal or secret data).
    """

    def __init__(
        self, *, tracer_provider: TracerProvider | None = None, capture_content: bool = False
    ) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("pyworkflow")
        self.capture_content = capture_content
        self.root: Span | None = None
        self.context: Any = None
        self.agent = ""
        self.planner_model = ""
        self.executor_model = ""
        self.last_seq = 0
        self.last_at: float | None = None
        self.plan_since: float | None = None  # when the planner was last asked
        self.started: dict[str, dict[str, Any]] = {}  # running units by label
        self.approvals: dict[str, float] = {}  # pending hook id → requested at
        self.step_tokens = 0
        self.last_step_end: float | None = None
        self.execution_done_at: float | None = None
        self.spans = 0

    # --- feeding -------------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Take the next event of the run (events already seen are ignored)."""
        if event.seq <= self.last_seq:
            return
        self.last_seq = event.seq
        p, at = event.payload, event.timestamp
        kind = event.type
        if kind is EventType.AGENT_STARTED:
            self._start_run(p, at)
        elif self.root is None:
            return  # the start of the log was not fed: no parent to hang spans on
        elif kind is EventType.AGENT_PLAN_GENERATED:
            self._plan(p, at)
        elif kind is EventType.AGENT_STEP_STARTED:
            self.started[str(p.get("label", p.get("step")))] = {**p, "at": at}
        elif kind in (EventType.AGENT_STEP_COMPLETED, EventType.AGENT_STEP_FAILED):
            self._step(p, at, failed=kind is EventType.AGENT_STEP_FAILED)
        elif kind in (
            EventType.AGENT_PLAN_APPROVAL_REQUESTED,
            EventType.AGENT_STEP_APPROVAL_REQUESTED,
        ):
            self.approvals[str(p.get("hook_id"))] = at
        elif kind in (EventType.AGENT_PLAN_APPROVED, EventType.AGENT_PLAN_REJECTED):
            self._approval(
                p, at, "approved" if kind is EventType.AGENT_PLAN_APPROVED else "rejected"
            )
        elif kind is EventType.AGENT_EXECUTION_COMPLETED:
            self.execution_done_at = at
        elif kind in (EventType.AGENT_COMPLETED, EventType.AGENT_FAILED, EventType.AGENT_CANCELLED):
            self._finish(kind, p, at)
        if kind not in _PLANNING_TRIGGERS_SKIPPED:
            self.plan_since = at
        self.last_at = at

    def _child(
        self, name: str, start: float, attributes: dict[str, Any], parent: Any = None
    ) -> Span:
        self.spans += 1
        return self.tracer.start_span(
            name, context=parent or self.context, start_time=_ns(start), attributes=attributes
        )

    def _start_run(self, p: dict[str, Any], at: float) -> None:
        self.agent = str(p.get("agent", "agent"))
        self.planner_model = str(p.get("planner_model", ""))
        self.executor_model = str(p.get("executor_model", ""))
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": self.agent,
            "pyworkflow.run_id": str(p.get("run_id", "")),
            "pyworkflow.planner_model": self.planner_model,
            "pyworkflow.executor_model": self.executor_model,
        }
        if self.capture_content:
            attributes["pyworkflow.query"] = str(p.get("query", ""))
        self.spans += 1
        self.root = self.tracer.start_span(
            f"invoke_agent {self.agent}", start_time=_ns(at), attributes=attributes
        )
        self.context = trace.set_span_in_context(self.root)

    def _plan(self, p: dict[str, Any], at: float) -> None:
        start = self.plan_since if self.plan_since is not None else at
        plan = p.get("plan") or []
        span = self._child(
            f"plan v{p.get('version', '?')}",
            start,
            {
                "pyworkflow.plan.version": int(p.get("version") or 0),
                "pyworkflow.plan.steps": len(plan),
                "pyworkflow.plan.attempts": int(p.get("attempts") or 1),
            },
        )
        model = self._child(
            f"chat {self.planner_model}",
            start,
            {
                **_model_attributes(self.planner_model, "planner"),
                "pyworkflow.usage.tokens": int(p.get("planner_tokens") or 0),
            },
            parent=trace.set_span_in_context(span),
        )
        model.end(end_time=_ns(at))
        span.end(end_time=_ns(at))

    def _step(self, p: dict[str, Any], at: float, *, failed: bool) -> None:
        label = str(p.get("label", p.get("step")))
        began = self.started.pop(label, {"at": at})
        tool = began.get("tool")
        attributes: dict[str, Any] = {
            "pyworkflow.step.id": int(p.get("step") or began.get("step") or 0),
            "pyworkflow.step.label": label,
            "pyworkflow.plan.version": int(began.get("plan_version") or 0),
        }
        if tool:
            attributes.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool})
        if p.get("mode"):
            attributes["pyworkflow.step.mode"] = p["mode"]
        if self.capture_content and "result" in p:
            attributes["pyworkflow.step.result"] = _content(p["result"])
        name = f"execute_tool {tool}" if tool else f"reasoning step {label}"
        span = self._child(name, began["at"], attributes)
        tokens = int(p.get("executor_tokens") or 0)
        if tokens:
            self.step_tokens += tokens
            call = self._child(
                f"chat {self.executor_model}",
                began["at"],
                {
                    **_model_attributes(self.executor_model, "executor"),
                    "pyworkflow.usage.tokens": tokens,
                },
                parent=trace.set_span_in_context(span),
            )
            call.end(end_time=_ns(at))
        if failed:
            error = str(p.get("error", "failed"))
            span.set_attribute("error.type", error.partition(":")[0] or "error")
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(at))
        self.last_step_end = at

    def _approval(self, p: dict[str, Any], at: float, decision: str) -> None:
        hook_id = str(p.get("hook_id"))
        requested = self.approvals.pop(hook_id, None)
        if requested is None and self.approvals:
            hook_id, requested = self.approvals.popitem()
        if requested is None:
            return
        attributes = {"pyworkflow.hook_id": hook_id, "pyworkflow.approval.decision": decision}
        if p.get("feedback") and self.capture_content:
            attributes["pyworkflow.approval.feedback"] = str(p["feedback"])
        self._child(f"approval {hook_id}", requested, attributes).end(end_time=_ns(at))

    def _finish(self, kind: EventType, p: dict[str, Any], at: float) -> None:
        assert self.root is not None
        usage = p.get("usage") if isinstance(p.get("usage"), dict) else None
        if usage is not None:
            executor = usage.get("executor") or {}
            answer_tokens = (
                int(executor.get("input_tokens") or 0)
                + int(executor.get("output_tokens") or 0)
                - self.step_tokens
            )
            if kind is EventType.AGENT_COMPLETED and answer_tokens > 0:
                end = self.execution_done_at or at
                start = self.last_step_end or self.plan_since or end
                self._child(
                    f"chat {self.executor_model}",
                    start,
                    {
                        **_model_attributes(self.executor_model, "answer"),
                        "pyworkflow.usage.tokens": answer_tokens,
                    },
                ).end(end_time=_ns(end))
            roles = [usage.get(r) or {} for r in ("planner", "executor")]
            self.root.set_attribute(
                "gen_ai.usage.input_tokens", sum(int(r.get("input_tokens") or 0) for r in roles)
            )
            self.root.set_attribute(
                "gen_ai.usage.output_tokens", sum(int(r.get("output_tokens") or 0) for r in roles)
            )
            costs = [r.get("cost_usd") for r in roles]
            if all(c is not None for c in costs):  # an unknown price is never counted as 0
                self.root.set_attribute("pyworkflow.cost_usd", sum(float(c) for c in costs if c))
        status = {EventType.AGENT_COMPLETED: "completed", EventType.AGENT_FAILED: "failed"}.get(
            kind, "cancelled"
        )
        self.root.set_attribute("pyworkflow.run.status", status)
        if kind is EventType.AGENT_FAILED:
            self.root.set_attribute("error.type", str(p.get("error_type") or "error"))
            self.root.set_status(Status(StatusCode.ERROR, str(p.get("error", ""))))
        elif kind is EventType.AGENT_COMPLETED and self.capture_content:
            self.root.set_attribute("pyworkflow.answer", _content(p.get("answer")))
        self.root.end(end_time=_ns(at))
        self.root = None

    def close(self) -> None:
        """End what is still open (a run followed only part of the way) at the last event."""
        if self.root is None or self.last_at is None:
            return
        for label, began in self.started.items():
            tool = began.get("tool")
            span = self._child(
                f"execute_tool {tool}" if tool else f"reasoning step {label}",
                began["at"],
                {"pyworkflow.step.label": label, "pyworkflow.step.unfinished": True},
            )
            span.end(end_time=_ns(self.last_at))
        self.started.clear()
        self.root.set_attribute("pyworkflow.run.status", "unfinished")
        self.root.end(end_time=_ns(self.last_at))
        self.root = None


def export_run(
    run_id: str, *, tracer_provider: TracerProvider | None = None, capture_content: bool = False
) -> int:
    """Emit the spans of run `run_id` (as recorded so far); returns how many were made."""
    recorder = SpanRecorder(tracer_provider=tracer_provider, capture_content=capture_content)
    for event in get_events_sync(run_id):
        recorder.feed(event)
    recorder.close()
    return recorder.spans


def otel_tracer_provider() -> Any:
    """An SDK tracer provider for the command line: OTLP when configured, else the console.

    OTLP is used when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, with the
    standard `OTEL_*` variables; otherwise spans are printed as JSON on stderr.

    Raises:
        ConfigurationError: the SDK (or, when an endpoint is set, an OTLP exporter) is missing.
    """
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        raise ConfigurationError(
            'exporting OpenTelemetry spans needs the SDK: pip install "pyworkflow[otel]"'
        ) from None
    exporter: SpanExporter
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigurationError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but no OTLP exporter is installed: "
                "pip install opentelemetry-exporter-otlp-proto-http"
            ) from None
        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter(out=sys.stderr)
    provider = SdkTracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", "pyworkflow")}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
