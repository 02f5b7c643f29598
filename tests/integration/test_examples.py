"""Every example runs as a user would run it: `python examples/<name>.py` in a fresh directory.

No API key is set, so the examples use their scripted models; no database URL is set, so they
store runs in the embedded SQLite default under the working directory.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
UNSET = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "PYWORKFLOW_DATABASE_URL")


@dataclass(frozen=True)
class Example:
    """An example script and what its output must show, in order."""

    script: str
    shows: list[str] = field(default_factory=list)
    # Patterns that must each match somewhere in the output.
    matches: list[str] = field(default_factory=list)
    # Statuses of the runs the example leaves in its database, and plan steps each executed.
    runs: list[str] = field(default_factory=lambda: ["completed"])
    steps_executed: int | None = None


EXAMPLES = [
    Example(
        "research_agent.py",
        shows=[
            "Query: Research the top 3 AI companies and create a comparison report",
            "Plan (6 steps):",
            "1. Search for the top AI companies of 2026  [search_web]  after: -",
            "3. Fetch revenue, funding and products of each company  "
            "[fetch_company_facts, for each $2]  after: 2",
            "6. Write an executive summary comparing the companies  [reasoning]  after: 3, 4",
            "Execution:",
            "Answer:",
            "| company | founded |",
            "planner:",
            "executor:",
        ],
        matches=[
            r"start 3a\s+fetch_company_facts",
            r"start 3b\s+fetch_company_facts",
            r"start 3c\s+fetch_company_facts",
            r"done  3a\s+\(direct, [\d.]+s\) -> \{\"company\": \"OpenAI\"",
            r"done  3b\s+\(direct, [\d.]+s\) -> \{\"company\": \"Anthropic\"",
            r"done  3c\s+\(direct, [\d.]+s\) -> \{\"company\": \"Google DeepMind\"",
            r"done  4\s+\(model, ",  # the executor model filled in the search query
            r"done  6\s+\(reasoning, ",
            r"\| OpenAI \|.*\n\| Anthropic \|.*\n\| Google DeepMind \|",
            r"Highest reported revenue: OpenAI",
            r"Run research-\w+ completed in [\d.]+s \(8 steps\)",
        ],
        steps_executed=8,  # 1, 2, 3a-3c, 4, 5, 6
    ),
    Example(
        "replanning_agent.py",
        shows=["FAIL  2", "Revised plan", "Answer:", "news_api x2, news_archive x1"],
    ),
]


def run_example(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.script for e in EXAMPLES])
def test_example_runs_and_shows_its_work(example: Example, tmp_path: Path) -> None:
    done = run_example(example.script, tmp_path)

    output = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{output}\n{done.stderr}"
    position = 0
    for text in example.shows:
        found = output.find(text, position)
        assert found >= 0, f"{text!r} missing (or out of order) in the output:\n{output}"
        position = found + len(text)
    for pattern in example.matches:
        assert re.search(pattern, output), f"{pattern!r} not found in the output:\n{output}"
    check_database(example, tmp_path, output)


def check_database(example: Example, cwd: Path, output: str) -> None:
    """The example stored its runs in the embedded SQLite default, with complete event logs."""
    database = cwd / ".pyworkflow" / "pyworkflow.sqlite"
    assert database.is_file(), f"no database at {database}"
    with sqlite3.connect(database) as conn:
        runs = conn.execute("SELECT run_id, status FROM pyworkflow_runs").fetchall()
        assert sorted(status for _, status in runs) == sorted(example.runs)
        for run_id, status in runs:
            assert run_id in output  # the example tells the user which run it was
            types = [
                row[0]
                for row in conn.execute(
                    "SELECT type FROM pyworkflow_events WHERE run_id = ? ORDER BY seq", (run_id,)
                )
            ]
            assert types[0] == "AGENT_STARTED"
            if status == "completed":
                assert types[-1] == "AGENT_COMPLETED"
            if example.steps_executed is not None:
                assert types.count("AGENT_STEP_STARTED") == example.steps_executed
                assert types.count("AGENT_STEP_COMPLETED") == example.steps_executed
