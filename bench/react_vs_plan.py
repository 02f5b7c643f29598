"""Plan-and-execute against a ReAct tool loop: model calls, tokens, latency and cost.

The same tasks run twice: by a PyWorkflow `PlanExecuteAgent` (one planner call whose plan is
written as the planner prompt asks, direct tool calls where the plan gives the arguments, an
executor call where a step must read an earlier result, one executor call for the answer), and
by a ReAct loop — a pydantic-ai `Agent` whose
model makes one tool call per turn (with a short thought before it) and then answers.

Both sides use the same tools (same docstrings, same sleeps, same results), the same
instructions, scripted `FunctionModel`s with the same replies, and the same token counter and
latency model (bench/_common.py). ReAct runs with a planner-class model (the like-for-like
baseline of the LLMCompiler and ReWOO papers: one model for everything) and with an
executor-class model (a cheap model for everything).

    .venv/bin/python bench/react_vs_plan.py [--quick] [--scale 1.0] [--tokens chars|words]
        [--answer-words N] [--lookups-as-steps]
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo

from pyworkflow import step
from pyworkflow.agents import PlanExecuteAgent, prompts
from pyworkflow.agents.plan import parse_plan
from pyworkflow.testing import temporary_runtime

INSTRUCTIONS = """\
You are the research assistant of an investment team. Answer the analyst's question with facts
taken from tool results only, never from memory; name the source of every figure; prefer the
most recent figures and say which period they cover. When the question compares several
companies, cover each one in the same way so they can be compared. Keep the answer short: a
paragraph or a small table, then one line on what remains uncertain."""

REACT_INSTRUCTIONS = (
    INSTRUCTIONS
    + """

Work step by step. Before each action, write one short thought saying what you need next.
Call one tool at a time and read its result before deciding the next step. When you have enough
information, write the final answer."""
)

# Simulated tool latency, seconds at scale 1.
TOOL_SECONDS = {"search_web": 1.0, "get_quote": 0.6, "extract_entities": 0.3}


# --- tools (the same functions serve both sides) ------------------------------------------------


def _quote(ticker: str) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "price": 100 + len(ticker) * 17.5,
        "currency": "USD",
        "pe_ratio": 20 + len(ticker) * 3.1,
        "market_cap_bn": 150 * len(ticker),
        "headlines": [c.filler(f"{ticker}{i}", 40) for i in range(3)],
    }


def _search_result(query: str) -> str:
    facts = FACTS.get(query, "")
    hits = []
    for i in range(5):
        hits.append(
            {
                "title": f"{query} — source {i + 1}",
                "url": f"https://news.example.com/{zlib.crc32(f'{query}{i}'.encode()):010d}",
                "snippet": (facts + " " if i == 0 and facts else "") + c.filler(f"{query}{i}", 55),
            }
        )
    return json.dumps(hits, indent=1)


def make_tools(clock: c.Clock) -> list[Callable[..., Any]]:
    async def search_web(query: str, max_results: int = 5) -> str:
        """Search the web and return the top results with title, URL and a snippet.

        Args:
            query: What to search for, in natural language; include names and years.
            max_results: How many results to return (1-10).
        """
        await clock.sleep(TOOL_SECONDS["search_web"])
        return _search_result(query)

    async def get_quote(ticker: str) -> str:
        """Get the latest stock quote, valuation ratios and headlines for one ticker.

        Args:
            ticker: The exchange ticker symbol, e.g. "NVDA".
        """
        await clock.sleep(TOOL_SECONDS["get_quote"])
        return json.dumps(_quote(ticker), indent=1)

    async def extract_entities(text: str, kind: str = "company", limit: int = 10) -> list[str]:
        """Extract named entities of one kind from a text, most mentioned first.

        Args:
            text: The text to read.
            kind: The kind of entity: "company", "person", "product" or "place".
            limit: The most entities to return.
        """
        await clock.sleep(TOOL_SECONDS["extract_entities"])
        return TOP_COMPANIES[:limit]

    async def fetch_page(url: str) -> str:
        """Fetch a web page and return its main text.

        Args:
            url: The page's address.
        """
        await clock.sleep(1.0)
        return c.filler(url, 400)

    async def calculator(expression: str) -> float:
        """Evaluate an arithmetic expression, e.g. "(3.2 - 2.9) / 2.9".

        Args:
            expression: The expression, with numbers and + - * / ( ) only.
        """
        return 0.0

    async def create_table(rows: list[dict[str, Any]], title: str = "") -> str:
        """Format rows of data as a markdown table.

        Args:
            rows: One dict per row; the keys of the first row are the columns.
            title: An optional title above the table.
        """
        return ""

    return [search_web, get_quote, extract_entities, fetch_page, calculator, create_table]


# --- tasks -------------------------------------------------------------------------------------

TOP_COMPANIES = ["OpenAI", "Anthropic", "Google DeepMind"]
TICKERS = ["NVDA", "MSFT", "GOOGL", "AMZN", "META", "TSM", "AVGO", "AMD"]
HOPS = [
    "best-selling AI server of 2025 and the maker of its GPU",
    "Nvidia headquarters city",
    "Santa Clara California population 2025",
]
FACTS = {
    HOPS[0]: "The best-selling AI server of 2025 was built around the Nvidia B200 GPU.",
    HOPS[1]: "Nvidia is headquartered in Santa Clara, California.",
    HOPS[2]: "Santa Clara had about 130,000 residents in 2025.",
}


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Any]
    thought: str


@dataclass(frozen=True)
class Task:
    name: str
    query: str
    plan: list[dict[str, Any]]
    react: list[ToolCall]  # what the ReAct model calls, in order
    answer: str  # the final answer, the same text on both sides
    filled: dict[str, dict[str, Any]] = field(default_factory=dict)  # step description → args


def _step(
    n: int, tool: str, params: dict[str, Any], description: str | None = None, **more: Any
) -> dict[str, Any]:
    """One plan step as the planner prompt asks for it: a description only where the call does
    not say it all, `depends_on` only where no reference implies it, default params left out."""
    described = {"description": description} if description else {}
    return {"step": n, **described, "tool": tool, "params": params, **more}


def _quotes_table() -> str:
    rows = [
        f"| {q['ticker']} | {q['price']:.2f} USD | {q['pe_ratio']:.1f} | get_quote, latest |"
        for q in map(_quote, TICKERS)
    ]
    return "\n".join(
        [
            "Latest quotes, all from get_quote (today's figures, trailing P/E):",
            "| ticker | price | P/E | source |",
            "|---|---|---|---|",
            *rows,
            "Uncertain: quotes move during the session; P/E uses trailing earnings.",
        ]
    )


# fmt: off
def tasks(*, lookups_as_steps: bool = False) -> list[Task]:
    research = Task(
        "research (seed query)",
        "Research top 3 AI companies and compare their products",
        [
            _step(1, "search_web", {"query": "top AI companies 2026 by revenue"}),
            _step(2, "extract_entities", {"text": "$1", "limit": 3}),
            _step(3, "search_web", {"query": "${item} products and revenue 2026"}, for_each="$2"),
        ],
        [
            ToolCall("search_web", {"query": "top AI companies 2026 by revenue"},
                     "I need to know which AI companies lead, so I will search for a ranking."),
            *[ToolCall("search_web", {"query": f"{name} products and revenue 2026"},
                       f"The results name {name}; I need its products and revenue next.")
              for name in TOP_COMPANIES],
        ],
        # A paragraph comparing the three, then a line on what is uncertain.
        c.filler("answer research", 200),
    )
    lookups = Task(
        "8 parallel lookups",
        f"Compare today's price and P/E ratio of {', '.join(TICKERS)}",
        # One tool over several inputs: one step with a listed for_each, as the prompt suggests
        # (--lookups-as-steps: one step per ticker instead).
        [_step(i + 1, "get_quote", {"ticker": t}) for i, t in enumerate(TICKERS)]
        if lookups_as_steps
        else [_step(1, "get_quote", {"ticker": "$item"}, for_each=TICKERS)],
        [
            ToolCall("get_quote", {"ticker": t}, f"I have {i} of the 8 quotes; next is {t}.")
            for i, t in enumerate(TICKERS)
        ],
        _quotes_table(),
    )
    hop2 = "Find the headquarters city of the GPU maker found in step 1"
    hop3 = "Find the population of the city found in step 2"
    chain = Task(
        "3-hop dependent chain",
        "What is the population of the city where the company that makes the GPU of the "
        "best-selling AI server of 2025 has its headquarters?",
        [
            _step(1, "search_web", {"query": HOPS[0]}),
            # The query depends on what step 1 found: the executor model fills it in.
            _step(2, "search_web", {}, hop2, depends_on=[1]),
            _step(3, "search_web", {}, hop3, depends_on=[2]),
        ],
        [
            ToolCall("search_web", {"query": HOPS[0]},
                     "First I need the best-selling AI server of 2025 and who makes its GPU."),
            ToolCall("search_web", {"query": HOPS[1]},
                     "The GPU is made by Nvidia; now I need the city of its headquarters."),
            ToolCall("search_web", {"query": HOPS[2]},
                     "Nvidia is based in Santa Clara; now I need that city's population."),
        ],
        "About 130,000 people lived in Santa Clara, California in 2025 (search: Santa Clara "
        "population 2025). It is the home of Nvidia, which makes the B200 GPU of 2025's "
        "best-selling AI server. Uncertain: the population is an estimate, not a census count.",
        {hop2: {"query": HOPS[1]}, hop3: {"query": HOPS[2]}},
    )
    return [research, lookups, chain]
# fmt: on


# --- scripted models ---------------------------------------------------------------------------


def planner_responder(task: Task) -> c.Responder:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # As the prompt asks: a JSON array, one step per line, no indentation.
        lines = ",\n".join(json.dumps(s) for s in task.plan)
        return ModelResponse(parts=[TextPart(f"[{lines}]")])

    return respond


def executor_responder(task: Task) -> c.Responder:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = c.prompt_text(messages)
        if info.function_tools:
            tool = info.function_tools[0].name
            for description, args in task.filled.items():
                if description in prompt:
                    return ModelResponse(parts=[ToolCallPart(tool, args)])
            raise AssertionError(f"no scripted arguments for this step:\n{prompt[:300]}")
        if info.instructions and info.instructions.startswith(prompts.ANSWER[:40]):
            return ModelResponse(parts=[TextPart(task.answer)])
        raise AssertionError("the plans here have no reasoning steps")

    return respond


def react_responder(task: Task) -> c.Responder:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
        if done < len(task.react):
            call = task.react[done]
            return ModelResponse(
                parts=[TextPart(f"Thought: {call.thought}"), ToolCallPart(call.tool, call.args)]
            )
        return ModelResponse(parts=[TextPart(task.answer)])

    return respond


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    calls: int
    input_tokens: int
    output_tokens: int
    seconds: float  # measured, in simulated seconds (scaled back)
    ideal: float  # the model and tool latencies on the critical path, nothing else
    cost: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def tool_critical_path(task: Task) -> float:
    """Tool latency along the plan's longest chain (fan-out elements run side by side)."""
    finish: dict[int, float] = {}
    for s in parse_plan(task.plan).steps:  # the plans here list steps after their dependencies
        start = max((finish[d] for d in s.depends_on), default=0.0)
        finish[s.id] = start + TOOL_SECONDS[str(s.tool)]
    return max(finish.values())


def run_pyworkflow(task: Task, index: int, clock: c.Clock, estimate: c.Estimator) -> Outcome:
    plan_log, exec_log = c.ModelCallLog(), c.ModelCallLog()
    agent = PlanExecuteAgent(
        planner_model=c.timed_model(
            "planner", c.PLANNER_CLASS, planner_responder(task), clock, plan_log, estimate
        ),
        executor_model=c.timed_model(
            "executor", c.EXECUTOR_CLASS, executor_responder(task), clock, exec_log, estimate
        ),
        tools=[step(fn) for fn in make_tools(clock)],
        instructions=INSTRUCTIONS,
        name=f"bench.react_vs_plan:task{index}",
    )
    with c.stopwatch() as elapsed:
        result = agent.run_sync(task.query)
    if result.status != "completed":
        raise SystemExit(f"{task.name}: the PyWorkflow run ended {result.status}: {result.error}")
    usage = result.usage
    assert usage.total.requests == len(plan_log.calls) + len(exec_log.calls)
    cost = c.PLANNER_CLASS.cost(usage.planner.input_tokens, usage.planner.output_tokens)
    cost += c.EXECUTOR_CLASS.cost(usage.executor.input_tokens, usage.executor.output_tokens)
    # In these plans every model call is on the critical path (plan → [fill] → answer).
    ideal = sum(s for *_, s in plan_log.calls + exec_log.calls) + tool_critical_path(task)
    return Outcome(
        usage.total.requests,
        usage.total.input_tokens,
        usage.total.output_tokens,
        clock.back(elapsed[0]),
        ideal,
        cost,
    )


def run_react(
    task: Task, model_class: c.ModelClass, clock: c.Clock, estimate: c.Estimator
) -> Outcome:
    log = c.ModelCallLog()
    model = c.timed_model(
        f"react-{model_class.name}", model_class, react_responder(task), clock, log, estimate
    )
    agent = Agent(model, instructions=REACT_INSTRUCTIONS, tools=make_tools(clock))
    with c.stopwatch() as elapsed:
        result = asyncio.run(agent.run(task.query))
    usage = result.usage
    assert result.output == task.answer
    ideal = sum(s for *_, s in log.calls) + sum(TOOL_SECONDS[call.tool] for call in task.react)
    return Outcome(
        usage.requests,
        usage.input_tokens,
        usage.output_tokens,
        clock.back(elapsed[0]),
        ideal,
        model_class.cost(usage.input_tokens, usage.output_tokens),
    )


def main() -> int:
    def extra(parser: Any) -> None:
        parser.add_argument(
            "--scale",
            type=float,
            default=None,
            help="run simulated latencies at this fraction of real time",
        )
        parser.add_argument(
            "--tokens",
            choices=sorted(c.ESTIMATORS),
            default="chars",
            help="token estimate: 4 characters a token, or pydantic-ai's word split",
        )
        parser.add_argument(
            "--answer-words",
            type=int,
            default=None,
            help="make every task's final answer this many words of prose (default: each "
            "task's own answer: a paragraph, a table, a sentence)",
        )
        parser.add_argument(
            "--lookups-as-steps",
            action="store_true",
            help="plan the 8 lookups as 8 steps rather than one step over a listed for_each",
        )

    args = c.arguments(__doc__.splitlines()[0], extra)
    c.quiet()
    scale = args.scale or (0.05 if args.quick else 1.0)
    clock = c.Clock(scale)
    estimate = c.ESTIMATORS[args.tokens]
    classes = {"planner": c.PLANNER_CLASS, "executor": c.EXECUTOR_CLASS}
    detail, ratios = [], []
    geo: dict[str, list[float]] = {}
    with temporary_runtime():
        for index, task in enumerate(tasks(lookups_as_steps=args.lookups_as_steps)):
            if args.answer_words is not None:
                task = replace(task, answer=c.filler(f"answer {task.name}", args.answer_words))
            ours = run_pyworkflow(task, index, clock, estimate)
            detail.append(
                [
                    task.name,
                    "PyWorkflow",
                    ours.calls,
                    ours.input_tokens,
                    ours.output_tokens,
                    f"{ours.seconds:.2f}",
                    f"{ours.ideal:.2f}",
                    f"{ours.cost * 100:.2f}¢",
                ]
            )
            for label, model_class in classes.items():
                theirs = run_react(task, model_class, clock, estimate)
                detail.append(
                    [
                        task.name,
                        f"ReAct ({label}-class)",
                        theirs.calls,
                        theirs.input_tokens,
                        theirs.output_tokens,
                        f"{theirs.seconds:.2f}",
                        f"{theirs.ideal:.2f}",
                        f"{theirs.cost * 100:.2f}¢",
                    ]
                )
                row = [
                    theirs.calls / ours.calls,
                    theirs.tokens / ours.tokens,
                    theirs.seconds / ours.seconds,
                    theirs.cost / ours.cost,
                ]
                for key, value in zip(("calls", "tokens", "latency", "cost"), row, strict=True):
                    geo.setdefault(f"{label}:{key}", []).append(value)
                ratios.append([task.name, f"{label}-class", *(f"{v:.2f}×" for v in row)])
    for label in classes:
        means = [
            math.prod(geo[f"{label}:{k}"]) ** (1 / len(geo[f"{label}:{k}"]))
            for k in ("calls", "tokens", "latency", "cost")
        ]
        ratios.append(["geometric mean", f"{label}-class", *(f"**{v:.2f}×**" for v in means)])
    c.emit(
        c.table(
            f"Plan-and-execute vs ReAct — per task (simulated seconds, run at {scale:g}× time; "
            f"tokens: {args.tokens}; {c.machine()})",
            [
                "task",
                "system",
                "model calls",
                "input tokens",
                "output tokens",
                "latency s",
                "of which model + tools s",
                "cost",
            ],
            detail,
        )
    )
    c.emit(
        c.table(
            "ReAct ÷ PyWorkflow (above 1: PyWorkflow uses less)",
            ["task", "ReAct model", "calls", "tokens", "latency", "cost"],
            ratios,
        )
    )
    c.emit(
        "Latency model and prices:\n- "
        + c.PLANNER_CLASS.describe()
        + "\n- "
        + c.EXECUTOR_CLASS.describe()
        + "\n- tools: "
        + ", ".join(f"{k} {v:g} s" for k, v in TOOL_SECONDS.items())
        + "\nPyWorkflow: planner-class planner, executor-class executor. "
        + "Anchors: LLMCompiler 3.7× latency and 6.7× cost vs ReAct; ReWOO 5× fewer tokens."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
