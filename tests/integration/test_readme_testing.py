"""The README's "Testing an agent" example runs as written, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_testing_example_runs_as_written(tmp_path: Path) -> None:
    section = README.read_text(encoding="utf-8").split("<!-- section:testing -->", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the Testing section has no Python example"
    script = tmp_path / "example.py"
    script.write_text(code.group(1) + '\nprint("ok")\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
