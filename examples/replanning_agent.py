"""Replanning: a source fails, the planner routes around it, the run still answers.

The plan reads market figures (step 1) and recent funding news (step 2) side by side, then
writes a brief from both (step 3). The news API is down: step 2 fails after its retry. The run
lets the other step finish, then shows the planner what completed (step 1's figures), what
failed and why; the planner answers with a plan for the remaining work that reads the news
archive instead (step 4) and writes the brief from step 1's figures and the archive (step 5).
Step 1 is not run again: its recorded result is reused as `$1`.

    python examples/replanning_agent.py

With ANTHROPIC_API_KEY set it plans with claude-opus-4-6 and executes with
claude-sonnet-3-7-20250219. Without it, scripted stand-ins (`pyworkflow.testing`) play both
models, so the example runs offline in a few seconds. Runs are stored in the embedded SQLite
default, .pyworkflow/pyworkflow.sqlite under the current directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from typing import Any

import pyworkflow
from pyworkflow import agent, step
from pyworkflow.events import EventType, watch_events
from pyworkflow.testing import prompt_results, scripted_executor, scripted_planner

QUERY = "Brief me on the AI market: size, growth and this quarter's funding news"
CALLS: Counter[str] = Counter()  # tool calls made in this process, by tool

# --- tools ----------------------------------------------------------------------------------


@step()
def market_data(sector: str) -> dict[str, Any]:
    """Market size and growth of a sector.

    Args:
        sector: The sector, e.g. "AI".
    """
    CALLS["market_data"] += 1
    return {"sector": sector, "size_usd_bn": 240, "growth_pct": 28}


@step(retries=1, retry_interval=0.2)
async def news_api(topic: str) -> list[str]:
    """Latest headlines about a topic from the live news API (fast, but often unavailable).

    Args:
        topic: What the headlines should be about.
    """
    CALLS["news_api"] += 1
    await asyncio.sleep(0.05)
    raise ConnectionError("news API unavailable (HTTP 503)")


@step()
async def news_archive(topic: str) -> list[str]:
    """Headlines about a topic from the news archive (slower, but reliable).

    Args:
        topic: What the headlines should be about.
    """
    CALLS["news_archive"] += 1
    await asyncio.sleep(0.2)
    return [
        f"{topic}: a foundation-model lab raises $4B",
        f"{topic}: inference chip start-up closes a $600M round",
    ]


# --- models: Claude when a key is set, scripted stand-ins otherwise -------------------------

PLAN: list[dict[str, Any]] = [
    {"step": 1, "description": "Read the AI market figures", "tool": "market_data",
     "params": {"sector": "AI"}},
    {"step": 2, "description": "Read this quarter's AI funding headlines", "tool": "news_api",
     "params": {"topic": "AI funding"}},
    {"step": 3, "description": "Write the brief from the figures and the headlines",
     "tool": None, "params": {"market": "$1", "news": "$2"}},
]  # fmt: skip
# What the planner answers once it is told that step 2 failed: the archive instead, and the
# brief from step 1's recorded figures ($1) and the archive's headlines ($4).
REPLAN: list[dict[str, Any]] = [
    {"step": 4, "description": "Read the funding headlines from the news archive instead",
     "tool": "news_archive", "params": {"topic": "AI funding"}},
    {"step": 5, "description": "Write the brief from the figures and the archived headlines",
     "tool": None, "params": {"market": "$1", "news": "$4"}},
]  # fmt: skip


def _plan(prompt: str) -> list[dict[str, Any]]:
    return REPLAN if "This step failed:" in prompt else PLAN


def _brief(prompt: str) -> str:
    known = json.loads(prompt.split("Arguments already known:", 1)[1].split("\n\n", 1)[0])
    market, news = known["market"], known["news"]
    return (
        f"The {market['sector']} market is worth about ${market['size_usd_bn']}B, growing "
        f"{market['growth_pct']}% a year. Funding news: " + "; ".join(news) + "."
    )


def _answer(prompt: str) -> str:
    results = prompt_results(prompt)
    return str(list(results.values())[-1])


def choose_models() -> tuple[Any, Any]:
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "claude-opus-4-6", "claude-sonnet-3-7-20250219"
    executor = scripted_executor(reasoning=_brief, answer=_answer)
    return scripted_planner(_plan).model, executor.model


PLANNER_MODEL, EXECUTOR_MODEL = choose_models()


@agent(
    pattern="plan_execute",
    planner_model=PLANNER_MODEL,
    executor_model=EXECUTOR_MODEL,
    tools=[market_data, news_api, news_archive],
    enable_replanning=True,  # the default; False ends the run at the first failed step
    max_replans=2,  # budgets: past any of them the run fails with BudgetExceededError
    max_steps=10,
    max_tokens=200_000,
)
async def market_brief_agent(query: str) -> None:
    """You write short market briefs. Prefer live sources; fall back to archives."""


# --- printing the run as it happens -----------------------------------------------------------


def print_plan(plan: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}:")
    for entry in plan:
        print(f"  {entry['step']}. {entry['description']}  [{entry['tool'] or 'reasoning'}]")


async def follow(run_id: str) -> None:
    async for event in watch_events(run_id, poll_interval=0.05):
        p = event.payload
        if event.type is EventType.AGENT_PLAN_GENERATED and p["version"] == 1:
            print_plan(p["plan"], "Plan")
        elif event.type is EventType.AGENT_STEP_STARTED:
            print(f"  start {p['label']:<3} {p['tool'] or 'reasoning'}")
        elif event.type is EventType.AGENT_STEP_COMPLETED:
            print(f"  done  {p['label']:<3} -> {json.dumps(p['result'])[:70]}")
        elif event.type is EventType.AGENT_STEP_FAILED:
            print(f"  FAIL  {p['label']:<3} {p['error']}")
        elif event.type is EventType.AGENT_REPLANNING:
            print(f"\nreplanning ({p['replan']} of at most 2): {p['reason']}")
            print_plan(p["new_plan"], f"Revised plan (version {p['replan'] + 1})")


async def main() -> int:
    print(f"Query: {QUERY}")
    run_id = f"brief-{uuid.uuid4().hex[:12]}"
    watcher = asyncio.create_task(follow(run_id))
    result = await market_brief_agent.run(QUERY, run_id=run_id)
    try:
        await asyncio.wait_for(watcher, timeout=5)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        watcher.cancel()
    if result.status != "completed":
        print(f"\nRun {run_id} {result.status}: {result.error_type}: {result.error}")
        return 1
    print(f"\nAnswer:\n{result.answer}")
    print(f"\nPlan in force: steps {[s['step'] for s in result.plan]}, {result.replans} replan(s)")
    print("Tool calls: " + ", ".join(f"{tool} x{n}" for tool, n in sorted(CALLS.items())))
    tokens = result.usage
    print(f"Tokens: planner {tokens.planner.total_tokens}, executor {tokens.executor.total_tokens}")
    print(f"Run {run_id} completed")
    return 0


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    finally:
        pyworkflow.shutdown()
    sys.exit(code)
