"""Shared pieces of the benchmarks: scripted models with a latency model, token counts, tables.

Every benchmark runs offline. Models are pydantic-ai `FunctionModel`s whose replies are scripted
and whose latency follows a stated model (a fixed part, plus a cost per input token and per
output token), applied by sleeping inside the model function. Tools sleep known durations.

Token counts. pydantic-ai's own `FunctionModel` estimate counts neither the instructions nor
the tool definitions sent with a request, and counts earlier replies in the history as output
tokens; a provider bills all of those as input. So the models here count what a provider would
bill — instructions, tool definitions, every message in the request (earlier replies included)
as input, the reply as output — plus pydantic-ai's 50-token per-request overhead, and report
it as the response's usage. Both sides of every comparison are counted by this one function.
Text is estimated at 4 characters a token (no tokenizer is available offline). pydantic-ai's
own string estimator (`words`: whitespace and punctuation split) is available too; it drops
JSON's quotes, colons and commas, so it counts a JSON plan at about half what a tokenizer
would, where prose comes out close to 4 characters a token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import _utils
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

REQUEST_OVERHEAD_TOKENS = 50  # pydantic-ai's FunctionModel estimate adds the same per request


# --- time --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """Simulated durations, run at `scale` × real time (1.0 = as stated; 0.1 = ten times faster).

    Figures are reported scaled back (measured ÷ scale). Engine overheads are not scaled, so a
    scale below 1 inflates them in the scaled-back figures: the error is against PyWorkflow.
    """

    scale: float = 1.0

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds * self.scale)

    def back(self, measured: float) -> float:
        """A measured duration in simulated seconds."""
        return measured / self.scale


# --- models ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelClass:
    """A model's latency (fixed + per token) and price (USD per million tokens)."""

    name: str
    fixed_s: float
    per_input_token_s: float
    per_output_token_s: float
    usd_per_m_input: float
    usd_per_m_output: float

    def latency(self, input_tokens: int, output_tokens: int) -> float:
        return (
            self.fixed_s
            + input_tokens * self.per_input_token_s
            + output_tokens * self.per_output_token_s
        )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.usd_per_m_input + output_tokens * self.usd_per_m_output) / 1e6

    def describe(self) -> str:
        return (
            f"{self.name}: {self.fixed_s:g} s + {self.per_input_token_s * 1e3:g} ms/input token + "
            f"{self.per_output_token_s * 1e3:g} ms/output token; "
            f"${self.usd_per_m_input:g} / ${self.usd_per_m_output:g} per million input / output tokens"
        )


# A strong, slow, dear model (about 67 output tokens/s) and a cheap, fast one (about 140/s).
PLANNER_CLASS = ModelClass("planner-class", 0.8, 0.02e-3, 15e-3, 5.0, 25.0)
EXECUTOR_CLASS = ModelClass("executor-class", 0.4, 0.01e-3, 7e-3, 1.0, 5.0)


Estimator = Callable[[str], int]
ESTIMATORS: dict[str, Estimator] = {
    "chars": lambda text: -(-len(text) // 4),
    "words": lambda text: _utils.estimate_string_tokens(text) if text else 0,
}


def _part_text(part: Any) -> str:
    if isinstance(part, (SystemPromptPart, UserPromptPart)):
        content = part.content
        return content if isinstance(content, str) else json.dumps(content, default=str)
    if isinstance(part, ToolReturnPart):
        return part.model_response_str()
    if isinstance(part, RetryPromptPart):
        return part.model_response()
    if isinstance(part, TextPart):
        return part.content
    if isinstance(part, ToolCallPart):
        return f"{part.tool_name} {part.args_as_json_str()}"
    return ""


def count_tokens(
    messages: Sequence[ModelMessage],
    info: AgentInfo,
    response: ModelResponse,
    estimate: Estimator = ESTIMATORS["chars"],
) -> tuple[int, int]:
    """(input, output) tokens a provider would bill for this request and reply."""
    texts = [info.instructions or ""]
    for tool in info.function_tools:
        texts += [tool.name, tool.description or "", json.dumps(tool.parameters_json_schema)]
    texts += [_part_text(p) for message in messages for p in message.parts]
    tokens_in = REQUEST_OVERHEAD_TOKENS + sum(estimate(t) for t in texts)
    tokens_out = sum(estimate(_part_text(p)) for p in response.parts)
    return tokens_in, tokens_out


@dataclass
class ModelCallLog:
    """Calls a timed model answered: (input tokens, output tokens, simulated seconds) each."""

    calls: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def input_tokens(self) -> int:
        return sum(c[0] for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c[1] for c in self.calls)


Responder = Callable[[list[ModelMessage], AgentInfo], ModelResponse]


def timed_model(
    name: str,
    model_class: ModelClass,
    respond: Responder,
    clock: Clock,
    log: ModelCallLog,
    estimate: Estimator = ESTIMATORS["chars"],
) -> FunctionModel:
    """A FunctionModel answering with `respond` after the latency `model_class` predicts."""

    async def request(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        response = respond(messages, info)
        tokens_in, tokens_out = count_tokens(messages, info, response, estimate)
        seconds = model_class.latency(tokens_in, tokens_out)
        await clock.sleep(seconds)
        log.calls.append((tokens_in, tokens_out, seconds))
        return ModelResponse(
            parts=response.parts,
            usage=RequestUsage(input_tokens=tokens_in, output_tokens=tokens_out),
        )

    request.__name__ = name
    return FunctionModel(request, model_name=name)


def prompt_text(messages: Sequence[ModelMessage]) -> str:
    """The text of every request part, for scripts that answer by looking at the prompt."""
    texts = []
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                content = getattr(part, "content", None)
                if isinstance(content, str):
                    texts.append(content)
    return "\n".join(texts)


# --- realistic text ----------------------------------------------------------------------------

_TEXT = (
    "the company reported revenue growth in its cloud and model licensing business while "
    "analysts noted rising compute costs and a broader enterprise push across regions with new "
    "partnerships research teams shipped an updated model family focused on reasoning coding and "
    "agents pricing changed for developers and usage of the platform increased sharply during the "
    "quarter according to filings and interviews with customers in finance health and retail"
)
_WORDS = _TEXT.split(" ")


def filler(seed: str, words: int) -> str:
    """Deterministic prose of about `words` words (each about one estimated token)."""
    state = sum(ord(c) for c in seed) or 1
    out = []
    for i in range(words):
        state = (state * 1103515245 + 12345) % (1 << 31)
        out.append(_WORDS[state % len(_WORDS)])
        if i % 14 == 13:
            out[-1] += "."
    return " ".join(out)


# --- measuring and printing --------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t:` … then `t[0]` is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes into the README as is), with a title line above it."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"**{title}**", "", line(cells[0]), rule, *map(line, cells[1:]), ""])


def emit(text: str) -> None:
    print(text, flush=True)


def machine() -> str:
    """Cores, Python, OS and the load average now (other work on the machine skews timings)."""
    import platform

    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} cores{load}, Python {platform.python_version()}, {platform.system()}"


def arguments(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run (short sleeps, one repeat)"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def quiet() -> None:
    """Keep the engine's own logging out of the tables."""
    logging.basicConfig(level=logging.ERROR)
    for name in ("dbos", "pyworkflow", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.pop("PYWORKFLOW_DATABASE_URL", None)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
