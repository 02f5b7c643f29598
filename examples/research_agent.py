"""Research agent: "Research the top 3 AI companies and create a comparison report".

A strong planner model writes the plan; a cheaper executor model fills in arguments that
depend on earlier results and writes the summary and the answer; tool calls whose arguments
are complete run directly. The per-company step fans out over the companies found at run time
(3a, 3b, 3c) and runs in parallel with the other independent branch.

    python examples/research_agent.py        # or: make example

With ANTHROPIC_API_KEY set it plans with claude-opus-4-6 and executes with
claude-sonnet-3-7-20250219. Without it, scripted stand-ins (`pyworkflow.testing`) play both
models, so the example runs offline in a few seconds. The tools search a small local corpus
(`corpus.py`), never the web. Runs are stored in the embedded SQLite default,
.pyworkflow/pyworkflow.sqlite under the current directory (PYWORKFLOW_DATABASE_URL overrides it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from typing import Any

from corpus import COMPANIES, DOCUMENTS, FACTS

import pyworkflow
from pyworkflow import agent, step
from pyworkflow.agents import AgentResult
from pyworkflow.events import Event, EventType, watch_events
from pyworkflow.testing import prompt_results, scripted_executor, scripted_planner

QUERY = "Research the top 3 AI companies and create a comparison report"

# --- tools: each call is a durable step, recorded once per run ------------------------------

_STOPWORDS = {"a", "an", "and", "for", "in", "of", "on", "the", "to", "with"}


@step()
def search_web(query: str) -> str:
    """Search the web and return the best matching pages, one per line.

    Args:
        query: Keywords to look for.
    """
    terms = [t for t in re.findall(r"\w+", query.lower()) if t not in _STOPWORDS]
    scored = []
    for doc in DOCUMENTS:
        words = re.findall(r"\w+", f"{doc['title']} {doc['text']}".lower())
        score = sum(words.count(term) for term in terms)
        if score:
            scored.append((score, doc))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    if not scored:
        return f"No results for {query!r}."
    return "\n".join(f"{d['title']} ({d['url']}): {d['text']}" for _, d in scored[:3])


@step()
def extract_entities(text: str, limit: int = 3) -> list[str]:
    """Extract company names from text, in the order they are first mentioned.

    Args:
        text: Text to read, such as search results.
        limit: The most names to return.
    """
    found: dict[str, int] = {}
    for name in COMPANIES:
        match = re.search(rf"\b{re.escape(name)}\b", text)
        if match:
            found[name] = match.start()
    return sorted(found, key=found.__getitem__)[:limit]


@step(retries=2, retry_interval=0.1)
async def fetch_company_facts(company: str) -> dict[str, Any]:
    """Fetch a company's profile: founding year, headquarters, products, funding and revenue.

    Args:
        company: The company's name, e.g. "Anthropic".
    """
    await asyncio.sleep(0.1)  # stands in for a slow API; fan-out calls overlap
    if company not in FACTS:
        raise LookupError(f"no profile for {company!r}; known: {', '.join(FACTS)}")
    return dict(FACTS[company])


@step()
def create_table(data: list[dict[str, Any]]) -> str:
    """Create a markdown table from a list of records (one row per record).

    Args:
        data: The records; their keys become the columns.
    """
    columns = list(dict.fromkeys(key for row in data for key in row))
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in data]
    return "\n".join(lines)


# --- models: Claude when a key is set, scripted stand-ins otherwise -------------------------

PLAN: list[dict[str, Any]] = [
    {"step": 1, "description": "Search for the top AI companies of 2026", "tool": "search_web",
     "params": {"query": "top AI companies 2026"}, "depends_on": []},
    {"step": 2, "description": "Extract the top 3 companies from the search results",
     "tool": "extract_entities", "params": {"text": "$1", "limit": 3}, "depends_on": [1]},
    {"step": 3, "description": "Fetch revenue, funding and products of each company",
     "tool": "fetch_company_facts", "for_each": "$2", "params": {"company": "${item}"},
     "depends_on": [2]},
    # No params: the executor model derives the query from step 2's result.
    {"step": 4, "description": "Search for the latest product launches of these companies",
     "tool": "search_web", "params": {}, "depends_on": [2]},
    {"step": 5, "description": "Compile the company facts into a comparison table",
     "tool": "create_table", "params": {"data": "$3"}, "depends_on": [3]},
    {"step": 6, "description": "Write an executive summary comparing the companies",
     "tool": None, "params": {"facts": "$3", "launches": "$4"}, "depends_on": [3, 4]},
]  # fmt: skip


def _json_after(marker: str, prompt: str) -> Any:
    """The JSON value that follows `marker` in a prompt (the stand-in model's reading)."""
    text = prompt.split(marker, 1)[-1].lstrip()
    value, _ = json.JSONDecoder().raw_decode(text)
    return value


def _fill_arguments(tool: str, prompt: str) -> dict[str, Any]:
    inputs = prompt_results(prompt)
    companies = next(v for v in inputs.values() if isinstance(v, list))
    return {"query": " ".join(companies) + " product launch"}


def _summarise(prompt: str) -> str:
    known = _json_after("Arguments already known:", prompt)
    facts = known.get("facts", [])
    lines = [
        f"- {f['company']} ({f['headquarters']}, founded {f['founded']}): {f['flagship_model']}; "
        f"revenue {f['annual_revenue']}, funding {f['funding_raised']}."
        for f in facts
    ]
    revenues = {f["company"]: _billions(f["annual_revenue"]) for f in facts}
    reported = {name: value for name, value in revenues.items() if value is not None}
    if reported:
        leader = max(reported, key=reported.__getitem__)
        lines.insert(0, f"Highest reported revenue: {leader} (${reported[leader]:.1f}B).")
    launches = [line.split(" (", 1)[0] for line in str(known.get("launches", "")).splitlines()]
    if launches:
        lines.append("Recent launches: " + "; ".join(launches) + ".")
    return "\n".join(lines)


def _billions(amount: str) -> float | None:
    match = re.fullmatch(r"\$(\d+(?:\.\d+)?)B", amount)
    return float(match.group(1)) if match else None


def _report(prompt: str) -> str:
    results = prompt_results(prompt)
    texts = [v for v in results.values() if isinstance(v, str)]
    table = next((t for t in texts if t.startswith("|")), "")
    summary = texts[-1] if texts and texts[-1] != table else ""
    return f"# Top 3 AI companies compared (illustrative figures)\n\n{table}\n\n{summary}"


def choose_models() -> tuple[Any, Any, str]:
    """Planner, executor, and a line saying which they are."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "claude-opus-4-6", "claude-sonnet-3-7-20250219", "Claude (ANTHROPIC_API_KEY is set)"
    planner = scripted_planner(PLAN)
    executor = scripted_executor(arguments=_fill_arguments, reasoning=_summarise, answer=_report)
    return planner.model, executor.model, "scripted stand-ins (set ANTHROPIC_API_KEY for Claude)"


PLANNER_MODEL, EXECUTOR_MODEL, MODELS_NOTE = choose_models()


@agent(
    pattern="plan_execute",
    planner_model=PLANNER_MODEL,
    executor_model=EXECUTOR_MODEL,
    tools=[search_web, extract_entities, fetch_company_facts, create_table],
    enable_replanning=True,
    require_approval=False,
)
async def research_agent(query: str) -> None:
    """You are a research analyst. Gather facts with the tools, compare the companies side by
    side in a table, and finish with a short executive summary. Prefer fanning out over a list
    of companies with for_each to writing one step per company."""


# --- printing the run as it happens ---------------------------------------------------------


def _preview(value: Any, width: int = 72) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def print_plan(plan: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title} ({len(plan)} steps):")
    for entry in plan:
        kind = entry["tool"] or "reasoning"
        if entry.get("for_each"):
            kind += f", for each {entry['for_each']}"
        after = ", ".join(map(str, entry.get("depends_on", []))) or "-"
        print(f"  {entry['step']}. {entry['description']}  [{kind}]  after: {after}")
    print("\nExecution:")


def print_event(event: Event) -> None:
    p = event.payload
    if event.type is EventType.AGENT_PLAN_GENERATED:
        version = p.get("version", 1)
        print_plan(p["plan"], "Plan" if version == 1 else f"Revised plan (version {version})")
    elif event.type is EventType.AGENT_STEP_STARTED:
        print(f"  start {p['label']:<4} {p['tool'] or 'reasoning':<20} {p['description']}")
    elif event.type is EventType.AGENT_STEP_COMPLETED:
        how = f"{p['mode']}, {p['duration_s'] or 0:.2f}s"
        print(f"  done  {p['label']:<4} ({how}) -> {_preview(p['result'])}")
    elif event.type is EventType.AGENT_STEP_FAILED:
        print(f"  FAIL  {p['label']:<4} {p['error']}")
    elif event.type is EventType.AGENT_REPLANNING:
        print(f"  replanning: {p['reason']}")


async def follow(run_id: str) -> None:
    """Print the run's events as they are recorded (any process could do this)."""
    async for event in watch_events(run_id, poll_interval=0.05):
        print_event(event)


def print_outcome(result: AgentResult, seconds: float) -> None:
    if result.status != "completed":
        print(f"\nRun {result.run_id} {result.status}: {result.error}")
        return
    print(f"\nAnswer:\n{result.answer}\n")
    usage = result.usage
    for role, part in (("planner", usage.planner), ("executor", usage.executor)):
        cost = "unknown cost" if part.cost_usd is None else f"${part.cost_usd:.4f}"
        print(
            f"{role:>8}: {part.requests} request(s), {part.input_tokens} in + "
            f"{part.output_tokens} out = {part.total_tokens} tokens, {cost}"
        )
    print(f"\nRun {result.run_id} completed in {seconds:.1f}s ({len(result.executed_steps)} steps)")


async def main() -> int:
    print(f"Query: {QUERY}\nModels: {MODELS_NOTE}")
    run_id = f"research-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    watcher = asyncio.create_task(follow(run_id))
    try:
        result = await research_agent.run(QUERY, run_id=run_id)
    except BaseException:
        watcher.cancel()
        raise
    # The run's last event is written before run() returns; let the watcher print it.
    try:
        await asyncio.wait_for(watcher, timeout=5)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        watcher.cancel()
    print_outcome(result, time.perf_counter() - started)
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    finally:
        pyworkflow.shutdown()
    sys.exit(code)
