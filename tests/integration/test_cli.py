"""The `pyworkflow` command, driven as a user drives it: real processes on a real database.

Every test runs `python -m pyworkflow ...` in subprocesses against a SQLite file of its own,
with agents from `cli_agents.py` (scripted models, real tools, real durable runs). The live
view is checked under a pseudo-terminal, Ctrl-C by typing it into that terminal, approvals by
deciding from a second process and letting a worker finish the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):  # type: ignore[no-untyped-def]
        return json.loads(self.out)


class Cli:
    """Runs `python -m pyworkflow` with the test's database; the agents' directory is the cwd."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "runs.sqlite"
        self.tool_log = tmp_path / "tools.log"
        self.env = {
            **os.environ,
            "PYWORKFLOW_DATABASE_URL": f"sqlite:///{self.db}",
            "CLI_TOOL_LOG": str(self.tool_log),
            "CLI_TOOL_DELAY": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("PYTHONPATH", None)  # the command itself must put the cwd on the path

    def command(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "pyworkflow", *args]

    def env_with(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def __call__(
        self, *args: str, timeout: float = 90, stdin: str | None = None, **env: str
    ) -> Result:
        done = subprocess.run(
            self.command(*args),
            cwd=HERE,
            env=self.env_with(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def many(self, *commands: tuple[str, ...]) -> list[Result]:
        """Run independent commands at once (each is a process that starts slowly)."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda args: self(*args), commands))

    def popen(self, *args: str, out: Path, **env: str) -> subprocess.Popen[bytes]:
        with out.open("wb") as sink:
            return subprocess.Popen(
                self.command(*args),
                cwd=HERE,
                env=self.env_with(**env),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def tool_calls(self) -> list[str]:
        return self.tool_log.read_text().splitlines() if self.tool_log.exists() else []


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def wait_for(
    condition: Callable[[], object], timeout: float = 30, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Terminal:
    """A process on a pseudo-terminal: what a user at a terminal would see and type."""

    def __init__(
        self, argv: list[str], env: dict[str, str], *, columns: int = 120, lines: int = 40
    ) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the command, with the terminal as its own
            os.chdir(HERE)
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.output = b""
        self.code: int | None = None

    def read_until(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not seen within {timeout}s; output:\n{self.plain}"
                )
            if not self._read(0.1):
                raise AssertionError(f"the process ended before {pattern!r}; output:\n{self.plain}")

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the process closed the terminal
                return False
            if not data:
                return False
            self.output += data
        return True

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self._read(0.1) and time.monotonic() < deadline:
            pass
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                os.close(self.fd)
                return self.code
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the process did not exit within {timeout}s; output:\n{self.plain}")

    @property
    def text(self) -> str:
        # The terminal turns each "\n" into "\r\n" on the way out; undo that for matching.
        return self.output.decode("utf-8", "replace").replace("\r\n", "\n")

    @property
    def plain(self) -> str:
        return ANSI.sub("", self.text)


# --- run ------------------------------------------------------------------------------------


def test_run_logs_one_line_per_event_then_prints_the_answer(cli: Cli) -> None:
    result = cli("run", "cli_agents:research", "Compare the top AI companies")

    assert result.code == 0, result.err
    out = result.out
    assert "plan v1: 5 steps" in out
    # The plan is shown as a tree: 5 nests under 3 (its deepest dependency) and names 4 too.
    assert "└─ 5 Write the comparison [reasoning]  ← 3, 4" in out
    for label in ("1", "2", "3a", "3b", "3c", "4", "5"):
        assert f"step {label} running" in out and f"step {label} done in" in out
    assert "step 2 done in" in out and '["Acme", "Globex", "Initech"]' in out
    assert "execution finished: 7 steps, 7 ok, 0 failed, 0 replans" in out
    assert out.rstrip().endswith("answer:\nAcme leads, Globex second, Initech third.")
    assert "\x1b[" not in out  # no terminal codes in a log
    run_id = re.match(
        r"run (run_\w+) · cli_agents:research · 'Compare the top AI companies'", out
    ).group(1)  # type: ignore[union-attr]
    assert cli("runs", "--json").json[0]["run_id"] == run_id


def test_run_redraws_the_plan_tree_in_place_on_a_terminal(cli: Cli) -> None:
    term = Terminal(
        cli.command("run", "cli_agents:research", "Compare"), cli.env_with(CLI_TOOL_DELAY="0.6")
    )
    term.read_until("Search for top AI companies")
    assert term.wait() == 0, term.plain
    text = term.text

    # Frames are redrawn over the previous one: cursor up by the frame's height, then clear.
    redraws = re.findall(r"\r\x1b\[(\d+)A\x1b\[J", text)
    assert len(redraws) >= 5
    frames = [ANSI.sub("", f) for f in re.split(r"\r\x1b\[\d+A\x1b\[J", text)]
    running = [
        f
        for f in frames
        if re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] 1 Search for top AI companies +search_web +running", f)
    ]
    assert running, "no frame showed step 1 running"
    assert "○ 5 Write the comparison" in running[0]  # waiting, with its dependencies
    assert "← 3, 4" in running[0]
    final = frames[-1]
    assert "✓ 1 Search for top AI companies" in final
    assert re.search(r"✓ 3a \d+\.\d+s +✓ 3b \d+\.\d+s +✓ 3c", final)  # fan-out items, timed
    assert re.search(r"completed · \d+\.\d+s · 5/5 steps done · \d+ tokens · cost n/a", final)
    assert final.rstrip().endswith("answer:\nAcme leads, Globex second, Initech third.")
    # Durations tick while a step runs: the same step shows growing times across frames.
    times = [
        float(m)
        for f in frames
        for m in re.findall(r"1 Search for top AI companies +search_web +running (\d+\.\d+)s", f)
    ]
    assert len(times) >= 2 and times[-1] > times[0]
    assert text.count("\x1b[?25l") == 1 and text.rstrip().count("\x1b[?25h") == 1  # cursor restored


def test_ctrl_c_stops_cleanly_and_the_run_resumes_without_redoing_finished_tools(cli: Cli) -> None:
    term = Terminal(
        cli.command("run", "cli_agents:research", "Compare", "--run-id", "run_ctrl_c"),
        cli.env_with(CLI_TOOL_DELAY="1.5"),
    )
    # Interrupt once steps 1, 2 and 4 have finished and step 3's searches are in flight.
    wait_for(lambda: any("revenue" in c for c in cli.tool_calls()), what="step 3 to start")
    term.type(b"\x03")  # Ctrl-C, through the terminal
    started = time.monotonic()
    assert term.wait() == 130, term.plain
    assert time.monotonic() - started < 15
    plain = term.plain
    assert "interrupted: run run_ctrl_c stays resumable" in plain
    assert "pyworkflow run cli_agents:research Compare --run-id run_ctrl_c" in plain
    assert "pyworkflow worker --import cli_agents" in plain
    assert "Traceback" not in plain
    assert cli("runs", "--json").json[0]["status"] == "running"

    resumed = cli("run", "cli_agents:research", "Compare", "--run-id", "run_ctrl_c")
    assert resumed.code == 0, resumed.err
    assert "rejoining run run_ctrl_c" in resumed.err
    assert resumed.out.rstrip().endswith("Acme leads, Globex second, Initech third.")
    calls = cli.tool_calls()
    # Finished tool calls ran once; only the searches in flight at Ctrl-C may have run again.
    assert calls.count("search_web top AI companies") == 1
    assert calls.count("search_web AI regulation") == 1
    assert calls.count("extract_entities") == 1
    events = [json.loads(line) for line in cli("events", "run_ctrl_c").out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "AGENT_COMPLETED"


def test_a_failed_run_exits_1_with_its_error(cli: Cli) -> None:
    result = cli("run", "cli_agents:failing", "Look up Acme")
    assert result.code == 1
    assert "step 1 failed: ConnectionError: registry unavailable" in result.out
    assert result.err.strip().splitlines()[-1].startswith("run run_")
    assert "ConnectionError: registry unavailable" in result.err


def test_run_json_prints_only_the_result(cli: Cli) -> None:
    result = cli("run", "cli_agents:research", "Compare", "--json", "--run-id", "run_json")
    assert result.code == 0, result.err
    data = result.json
    assert data["run_id"] == "run_json" and data["status"] == "completed"
    assert data["answer"] == "Acme leads, Globex second, Initech third."
    assert len(data["executed_steps"]) == 7


# --- reading runs ---------------------------------------------------------------------------


def test_runs_show_and_events_describe_past_runs(cli: Cli) -> None:
    assert cli("run", "cli_agents:replanning", "Acme facts", "--run-id", "run_replan").code == 0
    assert cli("run", "cli_agents:failing", "Acme", "--run-id", "run_failed").code == 1

    listing = cli("runs")
    assert listing.code == 0
    header, *rows = listing.out.splitlines()
    assert header.split() == ["RUN", "ID", "AGENT", "STATUS", "AGE", "STEPS", "TOKENS", "COST"]
    assert rows[0].split()[:3] == ["run_failed", "cli_agents:failing", "failed"]
    assert "0/1 (1 failed)" in rows[0]
    assert rows[1].split()[:3] == ["run_replan", "cli_agents:replanning", "completed"]
    data = cli("runs", "--json", "--status", "completed").json
    assert [r["run_id"] for r in data] == ["run_replan"]
    assert data[0]["steps"] == {"done": 1, "planned": 1, "failed": 1} and data[0]["tokens"] > 0
    assert cli("runs", "--json", "--limit", "1").json[0]["run_id"] == "run_failed"

    show = cli("show", "run_replan")
    assert show.code == 0
    out = show.out
    assert "plan v1 · 1 step" in out and "(replaced by v2)" in out
    assert (
        "plan v2 · 1 step" in out and "Step 1 failed: ConnectionError: registry unavailable" in out
    )
    assert "✗ 1 Look up Acme" in out and "✓ 2 Search for Acme instead" in out
    assert 'params     {"company": "Acme"}' in out
    assert 'result     "results for Acme"' in out
    assert "error      ConnectionError: registry unavailable" in out
    assert re.search(r"planner +2 requests, \d+ in / \d+ out tokens, cost n/a \(2 unpriced\)", out)
    assert "answer\nAcme, from the web" in out
    detail = cli("show", "run_replan", "--json").json
    assert [p["version"] for p in detail["plans"]] == [1, 2]
    assert detail["plans"][0]["steps"][0]["state"] == "failed"
    assert detail["plans"][1]["steps"][0]["units"][0]["result"] == "results for Acme"

    events = cli("events", "run_replan")
    types = [json.loads(line)["type"] for line in events.out.splitlines()]
    assert types[0] == "AGENT_STARTED" and types[-1] == "AGENT_COMPLETED"
    assert {"AGENT_STEP_FAILED", "AGENT_REPLANNING"} <= set(types)
    later = cli("events", "run_replan", "--after", "3").out.splitlines()
    assert json.loads(later[0])["seq"] == 4


def test_show_mermaid_draws_the_plan_graph(cli: Cli) -> None:
    assert cli("run", "cli_agents:research", "Compare", "--run-id", "run_graph").code == 0
    graph = cli("show", "run_graph", "--mermaid").out.splitlines()
    assert graph[0] == "flowchart TD"
    assert '    s3["3. Revenue of each company<br/><i>search_web, for each $2</i>"]' in graph
    edges = {line.strip() for line in graph if "-->" in line}
    assert edges == {"s1 --> s2", "s2 --> s3", "s3 --> s5", "s4 --> s5"}
    assert "    class s1,s2,s3,s4,s5 done" in graph


def test_events_follow_streams_a_live_run_until_it_ends(cli: Cli) -> None:
    # A run waiting for approval cannot end before the follower has started: no race.
    assert cli("run", "cli_agents:gated", "Research", "--run-id", "run_follow").code == 4
    follower = subprocess.Popen(
        cli.command("events", "run_follow", "--follow"),
        cwd=HERE,
        env=cli.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        events = []
        while not events or events[-1]["type"] != "AGENT_PLAN_APPROVAL_REQUESTED":
            events.append(json.loads(follower.stdout.readline()))
        assert follower.poll() is None  # still following the waiting run
        assert cli("approve", events[-1]["payload"]["hook_id"]).code == 0
        assert cli("run", "cli_agents:gated", "Research", "--run-id", "run_follow").code == 0
        events += [json.loads(line) for line in follower.stdout]
        assert follower.wait(timeout=60) == 0
    finally:
        follower.kill()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "AGENT_PLAN_APPROVED" in [e["type"] for e in events]
    assert events[-1]["type"] == "AGENT_COMPLETED"
    assert events[-1]["payload"]["answer"] == "Acme leads, Globex second, Initech third."


# --- errors ---------------------------------------------------------------------------------


def test_errors_are_one_line_with_distinct_exit_codes(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "missing.sqlite"
    no_db, no_db_either = cli.many(
        ("runs", "--database-url", f"sqlite:///{missing}"),
        ("show", "run_x"),  # the test's own database does not exist yet either
    )
    assert no_db.code == 3 and no_db_either.code == 3
    assert no_db.err.startswith("pyworkflow: error: database ") and "does not exist" in no_db.err
    assert len(no_db.err.strip().splitlines()) == 1
    assert not missing.exists() and not missing.parent.exists()  # reading created nothing
    assert not cli.db.exists()

    assert cli("run", "cli_agents:research", "Compare", "--run-id", "run_one").code == 0
    bad_specs = {
        "cli_agents": "expected MODULE:AGENT",
        "no_such_module:agent": "cannot import module 'no_such_module'",
        "cli_agents:nope": "agents it defines: careful, failing, gated, replanning, research",
        "cli_agents:not_an_agent": "is a str, not an agent",
    }
    unknown, *rest = cli.many(
        ("show", "run_nope"),
        ("events", "run_nope"),
        ("cancel", "run_nope"),
        ("approve", "hook_nope"),
        *[("run", spec, "q") for spec in bad_specs],
        ("run", "cli_agents:gated", "q", "--run-id", "run_one"),  # another agent's run
        ("runs", "--status", "sleeping"),
        ("reject", "hook_x"),  # --feedback is required
        (),
    )
    assert unknown.code == 3
    assert unknown.err.strip() == (
        "pyworkflow: error: no run with id 'run_nope' in this database; list runs with `pyworkflow runs`"
    )
    not_found, bad_runs, usage = rest[:3], rest[3:8], rest[8:]
    assert [r.code for r in not_found] == [3, 3, 3]
    assert "no hook with id 'hook_nope'" in not_found[2].err
    for result, message in zip(bad_runs, [*bad_specs.values(), "belongs to agent"], strict=True):
        assert result.code == 2, result.err
        assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert [r.code for r in usage] == [2, 2, 2]
    assert "invalid choice: 'sleeping'" in usage[0].err


def test_help_and_the_console_script(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in (
        "run",
        "runs",
        "show",
        "events",
        "approvals",
        "approve",
        "reject",
        "cancel",
        "worker",
    ):
        assert command in result.out
    assert "4 waiting for approval" in result.out
    script = Path(PYTHON).with_name("pyworkflow")
    done = subprocess.run(
        [str(script), "runs", "--help"], capture_output=True, text=True, env=cli.env, timeout=60
    )
    assert done.returncode == 0 and "--status" in done.stdout


# --- approvals and workers ------------------------------------------------------------------


def _hook_id(result: Result) -> str:
    match = re.search(r"hook (hook_[0-9a-f]+)", result.out)
    assert match, result.out + result.err
    return match.group(1)


def test_approve_from_the_command_line_resumes_the_run_in_a_worker(
    cli: Cli, tmp_path: Path
) -> None:
    started = cli("run", "cli_agents:gated", "Research, carefully", "--run-id", "run_gated")
    assert started.code == 4, started.out + started.err
    hook_id = _hook_id(started)
    assert f"pyworkflow approve {hook_id}" in started.out
    assert "waiting for approval of plan v1" in started.out
    assert cli.tool_calls() == []  # nothing ran before the approval

    pending = cli("approvals", "--json").json
    assert [h["hook_id"] for h in pending] == [hook_id]
    assert pending[0]["kind"] == "plan_approval" and pending[0]["run_id"] == "run_gated"
    assert [s["tool"] for s in pending[0]["payload"]["plan"]] == ["search_web", "extract_entities"]
    listing = cli("approvals").out
    assert "└─ ○ 2 Extract the top 3" in listing and f"pyworkflow approve {hook_id}" in listing

    # An edited plan is validated before it is accepted: a bad one leaves the run waiting.
    bad_plan = tmp_path / "bad.json"
    bad_plan.write_text(
        json.dumps([{"step": 1, "description": "Delete", "tool": "rm_rf", "params": {}}])
    )
    rejected = cli("approve", hook_id, "--plan", str(bad_plan))
    assert rejected.code == 5
    assert "the edited plan is invalid" in rejected.err and "rm_rf" in rejected.err
    not_json = tmp_path / "not.json"
    not_json.write_text("[{")
    assert cli("approve", hook_id, "--plan", str(not_json)).code == 2

    edited = tmp_path / "edited.json"
    edited.write_text(
        json.dumps(
            {
                "steps": [
                    {
                        "step": 1,
                        "description": "Search, narrower",
                        "tool": "search_web",
                        "params": {"query": "top 3 AI labs"},
                    }
                ]
            }
        )
    )
    approved = cli("approve", hook_id, "--plan", str(edited), "--feedback", "narrower")
    assert approved.code == 0, approved.err
    assert f"approved {hook_id} (plan approval of run run_gated)" in approved.out
    assert "pyworkflow worker --import cli_agents" in approved.err  # nothing is serving the run yet
    assert (
        cli("approve", hook_id, "--plan", str(edited), "--feedback", "narrower").code == 0
    )  # same decision: a no-op
    again = cli("reject", hook_id, "--feedback", "changed my mind")
    assert again.code == 5 and "already decided" in again.err
    assert cli("approvals", "--json").json == []

    worker = cli.popen("worker", "--import", "cli_agents", out=tmp_path / "worker.out")
    try:
        log = tmp_path / "worker.out"
        wait_for(
            lambda: "run_gated completed" in log.read_text(),
            timeout=60,
            what="the worker to finish the run",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert "resumed run_gated (cli_agents:gated, waiting for approval)" in text
    assert "stopping; runs in progress stay resumable" in text and "Traceback" not in text
    assert cli.tool_calls() == ["search_web top 3 AI labs"]  # the edited plan ran

    shown = cli("show", "run_gated").out
    assert f"{hook_id}  plan_approval of plan v1  approved after" in shown
    assert "feedback   narrower" in shown
    assert "(replaced by the approver's edit)" in shown
    assert "plan v2 · 1 step · 0 planner tokens · edited at approval" in shown
    assert "✓ 1 Search, narrower" in shown


def test_reject_sends_the_plan_back_and_the_new_plan_waits_again(cli: Cli) -> None:
    first = cli("run", "cli_agents:gated", "Research", "--run-id", "run_reject")
    assert first.code == 4
    hook_id = _hook_id(first)
    rejected = cli("reject", hook_id, "--feedback", "search for labs, not companies")
    assert rejected.code == 0 and f"rejected {hook_id}" in rejected.out

    second = cli("run", "cli_agents:gated", "Research", "--run-id", "run_reject")
    assert second.code == 4, second.out + second.err
    assert "plan rejected: search for labs, not companies" in second.out
    assert "waiting for approval of plan v2" in second.out
    new_hook = _hook_id(Result(0, second.out.split("plan v2")[-1], ""))
    assert new_hook != hook_id
    assert cli("approve", new_hook).code == 0
    done = cli("run", "cli_agents:gated", "Research", "--run-id", "run_reject")
    assert done.code == 0, done.out + done.err
    assert "plan approved" in done.out
    shown = cli("show", "run_reject", "--json").json
    assert [p["outcome"] for p in shown["plans"]] == [
        "rejected: search for labs, not companies",
        None,
    ]
    assert shown["plans"][1]["reason"] == "rejected: search for labs, not companies"
    assert [s["state"] for s in shown["plans"][0]["steps"]] == ["replanned", "replanned"]
    assert [s["state"] for s in shown["plans"][1]["steps"]] == ["done", "done"]
    assert [a["status"] for a in shown["approvals"]] == ["decided", "decided"]


def test_a_dangerous_tool_call_waits_for_its_own_approval(cli: Cli) -> None:
    waiting = cli("run", "cli_agents:careful", "Clear staging", "--run-id", "run_tool")
    assert waiting.code == 4, waiting.out + waiting.err
    assert "waiting for approval of a call of delete_records (step 1)" in waiting.out
    hook_id = _hook_id(waiting)
    listing = cli("approvals").out
    assert f"{hook_id}  tool_approval" in listing
    assert 'call     step 1: delete_records {"table": "staging"}' in listing
    assert cli.tool_calls() == []

    assert cli("approve", hook_id).code == 0
    done = cli("run", "cli_agents:careful", "Clear staging", "--run-id", "run_tool")
    assert done.code == 0, done.out + done.err
    assert done.out.rstrip().endswith("answer:\ndeleted staging")
    assert cli.tool_calls() == ["delete_records staging"]
    assert (
        f"{hook_id}  tool_approval of delete_records (step 1)  approved"
        in cli("show", "run_tool").out
    )


def test_cancel_a_waiting_run(cli: Cli) -> None:
    waiting = cli("run", "cli_agents:gated", "Research", "--run-id", "run_cancel")
    assert waiting.code == 4
    cancelled = cli("cancel", "run_cancel")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.strip() == "cancelled run run_cancel"
    assert cli("runs", "--json").json[0]["status"] == "cancelled"
    assert cli("approvals", "--json").json == []  # its hook can no longer be decided usefully
    again = cli("cancel", "run_cancel")
    assert again.code == 5 and "already cancelled" in again.err


def test_worker_resumes_a_run_whose_process_was_killed(cli: Cli, tmp_path: Path) -> None:
    run = cli.popen(
        "run",
        "cli_agents:research",
        "Compare",
        "--run-id",
        "run_killed",
        out=tmp_path / "run.out",
        CLI_TOOL_DELAY="1",
    )
    wait_for(lambda: "extract_entities" in cli.tool_calls(), what="step 2 to start")
    run.kill()  # SIGKILL: no chance to clean up
    run.wait()

    worker = cli.popen("worker", out=tmp_path / "worker.out", CLI_TOOL_DELAY="0.1")
    log = tmp_path / "worker.out"
    try:
        wait_for(
            lambda: "run_killed completed" in log.read_text(),
            timeout=60,
            what="the worker to finish the run",
        )
    finally:
        worker.send_signal(signal.SIGINT)
        code = worker.wait(timeout=30)
    assert code == 0
    assert "resumed run_killed (cli_agents:research, running)" in log.read_text()
    assert cli.tool_calls().count("search_web top AI companies") == 1
    assert "Acme leads" in cli("show", "run_killed").out


# --- OpenTelemetry --------------------------------------------------------------------------


def test_runs_become_opentelemetry_spans(cli: Cli) -> None:
    pytest.importorskip(
        "opentelemetry.sdk", reason='needs the otel extra: pip install "pyworkflow[otel]"'
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    import pyworkflow
    from pyworkflow.config import reset_settings
    from pyworkflow.telemetry import export_run

    assert cli("run", "cli_agents:replanning", "Acme", "--run-id", "run_otel").code == 0
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pyworkflow.configure(database_url=cli.env["PYWORKFLOW_DATABASE_URL"])
    try:
        count = export_run("run_otel", tracer_provider=provider)
    finally:
        reset_settings()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert count == len(exporter.get_finished_spans())
    root = spans["invoke_agent cli_agents:replanning"]
    assert root.parent is None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["pyworkflow.run_id"] == "run_otel"
    assert root.attributes["gen_ai.usage.input_tokens"] > 0
    assert "pyworkflow.query" not in root.attributes  # content is opt-in
    for name in ("plan v1", "plan v2", "execute_tool flaky_lookup", "execute_tool search_web"):
        assert spans[name].parent.span_id == root.context.span_id, name
        assert root.start_time <= spans[name].start_time <= spans[name].end_time <= root.end_time
    planner_calls = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes.get("pyworkflow.model.role") == "planner"
    ]
    assert len(planner_calls) == 2
    assert planner_calls[0].attributes["gen_ai.request.model"] == "planner"
    assert planner_calls[0].parent.span_id == spans["plan v1"].context.span_id
    failed = spans["execute_tool flaky_lookup"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ConnectionError"
    assert spans["execute_tool search_web"].attributes["gen_ai.tool.name"] == "search_web"
    answer = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes.get("pyworkflow.model.role") == "answer"
    ]
    assert len(answer) == 1 and answer[0].attributes["pyworkflow.usage.tokens"] > 0

    # The command exports while it watches (console exporter on stderr without an endpoint).
    traced = cli("run", "cli_agents:research", "Compare", "--otel")
    assert traced.code == 0, traced.err
    assert '"name": "invoke_agent cli_agents:research"' in traced.err
    assert '"name": "execute_tool extract_entities"' in traced.err


# --- the README's terminal session ----------------------------------------------------------

README = HERE.parents[1] / "README.md"
EXAMPLES = HERE.parents[1] / "examples"


def _normalise(text: str, ids: dict[str, str]) -> str:
    """Output with what differs between sessions — ids, times, ages, dates — made neutral."""

    def name(match: re.Match[str]) -> str:
        kind = match.group(1)
        return ids.setdefault(
            match.group(0), f"<{kind}{sum(k.startswith(kind) for k in ids.values()) + 1}>"
        )

    text = re.sub(r"\b(run|hook)_[0-9a-f]{16,32}\b", name, text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<date>", text)
    text = re.sub(r"worker \S+ serving", "worker <id> serving", text)
    text = re.sub(r"\d+(\.\d+)?(s|m|h|d)\b", "<t>", text)
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def _console_blocks(section: str) -> list[list[tuple[str, str]]]:
    """Each ```console block as (command, expected output) pairs."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", section, re.S):
        pairs: list[tuple[str, str]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                pairs.append((line[2:], ""))
            else:
                command, output = pairs[-1]
                pairs[-1] = (command, output + line + "\n")
        blocks.append(pairs)
    return blocks


def test_the_readme_session_is_what_the_command_prints(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("<!-- section:cli -->") : text.index("<!-- /section:cli -->")]
    first, worker_block, last = _console_blocks(section)
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns(".pyworkflow", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    readme_ids: dict[str, str] = {}
    real_ids: dict[str, str] = {}

    def check(command: str, expected: str, previous_code: int) -> int:
        if command == "echo $?":
            assert str(previous_code) == expected.strip()
            return previous_code
        args = shlex.split(command)
        assert args[0] == "pyworkflow", command
        wanted = _normalise(expected, readme_ids)
        # The session's ids stand for whatever ids this run produced in the same order.
        real = {placeholder: actual for actual, placeholder in real_ids.items()}
        args = [real.get(readme_ids.get(a, ""), a) for a in args[1:]]
        done = subprocess.run(
            [PYTHON, "-m", "pyworkflow", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert _normalise(done.stdout + done.stderr, real_ids) == wanted, command
        return done.returncode

    assert first[0][0] == "cd examples"
    code = 0
    for command, expected in first[1:]:
        code = check(command, expected, code)

    assert worker_block[0][0] == "pyworkflow worker --import approval_agent"
    log = tmp_path / "worker.out"
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            [PYTHON, "-m", "pyworkflow", "worker", "--import", "approval_agent"],
            cwd=work,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "waiting for approval: hook" in log.read_text(),
            timeout=60,
            what="the card approval",
        )
        for command, expected in last:
            if command.startswith("pyworkflow show"):
                wait_for(
                    lambda: "completed" in log.read_text(), timeout=60, what="the run to finish"
                )
            code = check(command, expected, code)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    worker_out = log.read_text().replace("stopping; runs in progress stay resumable\n", "")
    assert _normalise(worker_out, real_ids) == _normalise(worker_block[0][1], readme_ids)
