"""Every benchmark still runs: each `bench/*.py --quick` exits 0 and prints its tables.

Benchmarks are not timed tests; their figures are read by people (docs/benchmarks.md). This
only keeps them from rotting as the code under them changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(p.name for p in (REPO_ROOT / "bench").glob("[!_]*.py"))

pytestmark = pytest.mark.slow


def test_the_benchmarks_are_found() -> None:
    assert {"overhead.py", "parallel.py", "react_vs_plan.py"} <= set(BENCHES)


@pytest.mark.parametrize("bench", BENCHES)
def test_benchmark_runs_in_quick_mode(bench: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYWORKFLOW_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "bench" / bench), "--quick"],
        cwd=tmp_path,  # nothing may be written beside the sources
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hung benchmark is killed with the processes it started
    )
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{bench} --quick ran over 240 s:\n{out[-2000:]}\n{err[-2000:]}")
    assert process.returncode == 0, err[-3000:]
    header_rules = [line for line in out.splitlines() if line.startswith("|--")]
    assert header_rules, f"no table printed:\n{out[-3000:]}"
    if bench == "overhead.py":  # the crash table: the resumed run must have finished
        assert "Crash and resume" in out and "not completed" not in out, out[-3000:]
    assert list(tmp_path.iterdir()) == []
