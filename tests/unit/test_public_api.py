"""The public API is a short, deliberate list; DBOS stays behind `pyworkflow.engine`.

Changing an exported name is a decision: update the pinned list here in the same change.
"""

from __future__ import annotations

import ast
import inspect
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyworkflow
import pyworkflow.agents
import pyworkflow.engine

PACKAGE = Path(pyworkflow.__file__).parent

PYWORKFLOW_ALL = {
    "AgentResult",
    "Event",
    "EventType",
    "PyWorkflowError",
    "RunHandle",
    "Settings",
    "Step",
    "Workflow",
    "agent",
    "approve_workflow_hook",
    "approve_workflow_hook_sync",
    "configure",
    "get_events",
    "get_events_sync",
    "get_run",
    "get_run_sync",
    "hook",
    "list_runs",
    "resume_hook",
    "resume_hook_sync",
    "shutdown",
    "step",
    "workflow",
}

AGENTS_ALL = {
    "PATTERNS",
    "AgentResult",
    "ExecutedStep",
    "Executor",
    "Plan",
    "PlanExecuteAgent",
    "PlanStep",
    "Planner",
    "TokenUsage",
    "Usage",
    "agent",
    "parse_plan",
    "validate_plan",
}


def test_pyworkflow_exports_exactly_the_pinned_names() -> None:
    assert set(pyworkflow.__all__) == PYWORKFLOW_ALL
    assert len(pyworkflow.__all__) == len(PYWORKFLOW_ALL)  # no name listed twice


def test_pyworkflow_agents_exports_exactly_the_pinned_names() -> None:
    assert set(pyworkflow.agents.__all__) == AGENTS_ALL
    assert len(pyworkflow.agents.__all__) == len(AGENTS_ALL)


def test_every_exported_name_exists_and_is_documented() -> None:
    for module in (pyworkflow, pyworkflow.agents):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                assert inspect.getdoc(value), f"{module.__name__}.{name} has no docstring"


def test_the_seeds_imports_work() -> None:
    from pyworkflow import agent, approve_workflow_hook, hook, step, workflow
    from pyworkflow.agents import Executor, PlanExecuteAgent, Planner

    assert all(callable(x) for x in (agent, approve_workflow_hook, hook, step, workflow))
    assert all(inspect.isclass(x) for x in (Executor, PlanExecuteAgent, Planner))
    # The decorator and the class build the same kind of agent.
    assert pyworkflow.agents.PATTERNS["plan_execute"] is PlanExecuteAgent


def _imports_dbos(path: Path) -> list[int]:
    """Line numbers of the `import dbos…` / `from dbos… import` statements in a file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "dbos" or name.startswith("dbos.") for name in names):
            lines.append(node.lineno)
    return lines


def test_only_the_engine_package_imports_dbos() -> None:
    engine = PACKAGE / "engine"
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if engine not in path.parents and (lines := _imports_dbos(path))
    }
    assert offenders == {}, f"dbos imported outside pyworkflow/engine/: {offenders}"
    # The scan does find the engine's own imports, so an empty result above means something.
    assert any(_imports_dbos(path) for path in engine.rglob("*.py"))


def test_importing_the_package_and_reading_runs_loads_neither_dbos_nor_pydantic_ai(
    tmp_path: Path,
) -> None:
    # Every CLI command imports the package; the read-only ones should start in a fraction of
    # a second, so the heavy dependencies load only where a run is executed.
    database = tmp_path / "runs.sqlite"
    sqlite3.connect(database).close()  # an empty database: `runs` answers "No runs"
    code = f"""
import sys
import pyworkflow
from pyworkflow.cli import main
code = main(["runs", "--database-url", "sqlite:///{database}"])
heavy = sorted(m for m in ("dbos", "pydantic_ai") if m in sys.modules)
print(code, heavy)
import pyworkflow.workflow  # a submodule named like an export must not hide the export
assert callable(pyworkflow.workflow), pyworkflow.workflow
from pyworkflow import workflow
assert workflow.__module__ == "pyworkflow.workflow" and not isinstance(workflow, type(sys))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_every_lazy_export_resolves_to_what_its_module_defines() -> None:
    for module in (pyworkflow, pyworkflow.agents, pyworkflow.engine):
        assert set(module.__all__) <= set(dir(module))
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
