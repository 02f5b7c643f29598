"""The README's Python examples run as written, each in a fresh process.

The quickstart and the replanning example name real models and tools of the reader's own; the
test supplies those tools and runs each agent with scripted models through `override`. The
Events and Providers snippets run on the quickstart's result; "Testing an agent" needs nothing.
The approval, deployment and configuration snippets show alternatives side by side (three
decisions on one hook, a client that needs a worker) and are exercised by their own tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_example(section: str) -> str:
    text = README.read_text(encoding="utf-8").split(f"<!-- section:{section} -->", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code is not None, f"the {section} section has no Python example"
    return code.group(1)


def run_script(tmp_path: Path, script: str) -> str:
    path = tmp_path / "example.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_quickstart_runs_with_scripted_models_in_place_of_claude(tmp_path: Path) -> None:
    definitions, marker, usage = python_example("quickstart").partition("result = await")
    assert marker, "the quickstart no longer runs its agent"
    script = "\n".join(
        [
            "import asyncio",
            "from pyworkflow.testing import scripted_executor, scripted_planner, temporary_runtime",
            "",
            "async def my_search_api(query):",
            "    return f'results for {query}'",
            "",
            "def to_markdown(data):",
            "    return '| ' + ' | '.join(row['company'] for row in data) + ' |'",
            "",
            definitions,
            "planner = scripted_planner([",
            "    {'step': 1, 'tool': 'search_web', 'params': {'query': 'top AI companies'}},",
            "    {'step': 2, 'description': 'Tabulate them', 'tool': 'create_table',",
            "     'depends_on': [1]},",
            "])",
            "executor = scripted_executor(",
            "    arguments={'create_table': {'data': [{'company': 'A'}, {'company': 'B'}]}},",
            "    answer='A and B compared',",
            ")",
            "",
            "async def main():",
            "    with research_agent.override(",
            "        planner_model=planner.model, executor_model=executor.model",
            "    ):",
            textwrap.indent(marker + usage, " " * 8),
            "    assert result.status == 'completed', result.error",
            "    assert result.answer == 'A and B compared'",
            "    assert [s.result for s in result.executed_steps] == [",
            "        'results for top AI companies', '| A | B |'",
            "    ]",
            "    assert research_agent.planner_model == 'claude-opus-4-6'  # restored",
            # The Events and Providers sections read the quickstart's result.
            textwrap.indent(python_example("events"), " " * 4),
            textwrap.indent(python_example("providers"), " " * 4),
            "    assert result.usage.total.cost_usd is None  # scripted models have no price",
            "",
            "with temporary_runtime():",
            "    asyncio.run(main())",
            "print('ok')",
        ]
    )
    output = run_script(tmp_path, script)
    assert "AGENT_COMPLETED" in output and output.strip().endswith("ok")


def test_the_replanning_example_replans_once_when_news_api_is_down(tmp_path: Path) -> None:
    definitions, marker, usage = python_example("replanning").partition("result = await")
    assert marker, "the replanning example no longer runs its agent"
    first = [
        {"step": 1, "tool": "market_data", "params": {"sector": "AI"}},
        {"step": 2, "tool": "news_api", "params": {"topic": "AI"}},
    ]
    second = [{"step": 3, "tool": "news_archive", "params": {"topic": "AI"}}]
    script = "\n".join(
        [
            "import asyncio",
            "from pyworkflow import agent, step",
            "from pyworkflow.testing import scripted_executor, scripted_planner, temporary_runtime",
            "",
            "@step()",
            "def market_data(sector: str) -> str:",
            '    """Market size of a sector."""',
            "    return f'{sector}: $200B'",
            "",
            "@step()",
            "def news_api(topic: str) -> str:",
            '    """Latest news."""',
            "    raise ConnectionError('news_api is down')",
            "",
            "@step()",
            "def news_archive(topic: str) -> str:",
            '    """Archived news."""',
            "    return f'{topic}: funding rounds'",
            "",
            definitions,
            f"planner = scripted_planner({first!r}, {second!r})",
            "executor = scripted_executor(answer='brief')",
            "",
            "async def main():",
            "    with market_brief_agent.override(",
            "        planner_model=planner.model, executor_model=executor.model",
            "    ):",
            textwrap.indent(marker + usage, " " * 8),
            "    assert result.status == 'completed', result.error",
            "    assert result.replans == 1 and len(result.plans) == 2",
            "    assert [s.tool for s in result.executed_steps if s.status == 'completed'] == [",
            "        'market_data', 'news_archive'",
            "    ]",
            "",
            "with temporary_runtime():",
            "    asyncio.run(main())",
            "print('ok')",
        ]
    )
    assert run_script(tmp_path, script).strip().endswith("ok")


def test_the_testing_example_runs_as_written(tmp_path: Path) -> None:
    output = run_script(tmp_path, python_example("testing") + '\nprint("ok")\n')
    assert output.strip().endswith("ok")
