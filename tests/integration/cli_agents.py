"""Agents with scripted models, for driving the `pyworkflow` command in tests.

The command imports this module (`pyworkflow run cli_agents:research "..."`), so it must
define everything at import time. Tools append a line to `$CLI_TOOL_LOG` each time they
really run, so a test can tell a replayed call from a repeated one. `CLI_TOOL_DELAY` (seconds)
slows the search tool down so the live view and Ctrl-C have something to watch.
"""

from __future__ import annotations

import asyncio
import os

from pyworkflow import agent, step
from pyworkflow.testing import scripted_executor, scripted_planner


def _log(line: str) -> None:
    path = os.environ.get("CLI_TOOL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _delay() -> float:
    return float(os.environ.get("CLI_TOOL_DELAY", "0"))


@step()
async def search_web(query: str) -> str:
    """Search the web for information."""
    _log(f"search_web {query}")
    await asyncio.sleep(_delay())
    return f"results for {query}"


@step()
async def extract_entities(text: str) -> list[str]:
    """Extract company names from text."""
    _log("extract_entities")
    await asyncio.sleep(_delay() / 4)
    return ["Acme", "Globex", "Initech"]


@step()
async def flaky_lookup(company: str) -> str:
    """Look up a company in a registry that is down."""
    _log(f"flaky_lookup {company}")
    raise ConnectionError("registry unavailable")


RESEARCH_PLAN = [
    {
        "step": 1,
        "description": "Search for top AI companies",
        "tool": "search_web",
        "params": {"query": "top AI companies"},
        "depends_on": [],
    },
    {
        "step": 2,
        "description": "Extract the top 3",
        "tool": "extract_entities",
        "params": {"text": "$1"},
        "depends_on": [1],
    },
    {
        "step": 3,
        "description": "Revenue of each company",
        "tool": "search_web",
        "for_each": "$2",
        "params": {"query": "${item} revenue"},
        "depends_on": [2],
    },
    {
        "step": 4,
        "description": "Search for AI regulation news",
        "tool": "search_web",
        "params": {"query": "AI regulation"},
        "depends_on": [],
    },
    {"step": 5, "description": "Write the comparison", "tool": None, "depends_on": [3, 4]},
]

ANSWER = "Acme leads, Globex second, Initech third."


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(RESEARCH_PLAN).model,
    executor_model=scripted_executor(reasoning="compared", answer=ANSWER).model,
    tools=[search_web, extract_entities],
)
async def research(query: str) -> None:
    """Research companies and compare them."""


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(RESEARCH_PLAN[:2]).model,
    executor_model=scripted_executor(answer=ANSWER).model,
    tools=[search_web, extract_entities],
    require_approval=True,
)
async def gated(query: str) -> None:
    """Research, but only after a human approves the plan."""


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(
        [
            {
                "step": 1,
                "description": "Look up Acme",
                "tool": "flaky_lookup",
                "params": {"company": "Acme"},
                "depends_on": [],
            }
        ],
        [
            {
                "step": 2,
                "description": "Search for Acme instead",
                "tool": "search_web",
                "params": {"query": "Acme"},
                "depends_on": [],
            }
        ],
    ).model,
    executor_model=scripted_executor(answer="Acme, from the web").model,
    tools=[search_web, flaky_lookup],
)
async def replanning(query: str) -> None:
    """Find facts about a company, replanning when a source is down."""


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(
        [
            {
                "step": 1,
                "description": "Look up Acme",
                "tool": "flaky_lookup",
                "params": {"company": "Acme"},
                "depends_on": [],
            }
        ],
    ).model,
    executor_model=scripted_executor().model,
    tools=[flaky_lookup],
    enable_replanning=False,
)
async def failing(query: str) -> None:
    """Fails: its only source is down and it may not replan."""


not_an_agent = "just a string"


@step(requires_approval=True)
async def delete_records(table: str) -> str:
    """Delete every record of a table. Each call needs a human's approval."""
    _log(f"delete_records {table}")
    return f"deleted {table}"


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(
        [
            {
                "step": 1,
                "description": "Clear the staging table",
                "tool": "delete_records",
                "params": {"table": "staging"},
                "depends_on": [],
            }
        ],
    ).model,
    executor_model=scripted_executor(answer="staging cleared").model,
    tools=[delete_records],
    answer="last_step",
)
async def careful(query: str) -> None:
    """Maintenance agent whose dangerous tool asks before each call."""
