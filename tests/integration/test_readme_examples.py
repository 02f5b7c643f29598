"""The README's Python examples run as written, each in a fresh process.

The quickstart names real models and two helpers of the reader's own (`my_search_api`,
`to_markdown`); the test supplies those helpers and runs the agent with scripted models through
`override`. The "Testing an agent" example needs nothing supplied.
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
