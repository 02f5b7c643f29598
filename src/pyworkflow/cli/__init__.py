"""The `pyworkflow` command: run agents and watch them, inspect runs, decide approvals.

```
pyworkflow run MODULE:AGENT "query" [--run-id ID]   run an agent with a live view
pyworkflow runs [--status S] [--limit N]            recent runs
pyworkflow show RUN_ID [--mermaid]                  plans, steps, approvals, usage of a run
pyworkflow events RUN_ID [--follow]                 the event log as JSON lines
pyworkflow approvals                                hooks waiting for a human, with their plans
pyworkflow approve HOOK_ID [--feedback ..] [--plan edited.json]
pyworkflow reject HOOK_ID --feedback ..
pyworkflow cancel RUN_ID
pyworkflow worker [--import MODULE ...]             resume suspended and crashed runs, serve
```

Every command takes `--database-url` (else `PYWORKFLOW_DATABASE_URL`). Exit codes are in
`Exit` and docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from pyworkflow.cli._common import CommandError, Exit

__all__ = ["Exit", "main"]


def _parser() -> argparse.ArgumentParser:
    from pyworkflow.cli import _approvals, _inspect, _run, _worker

    # Options every command accepts, before or after the command's name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="sqlite:///path.sqlite or postgresql://user:pass@host/db "
        "(default: $PYWORKFLOW_DATABASE_URL, else sqlite:///.pyworkflow/pyworkflow.sqlite)",
    )
    parser = argparse.ArgumentParser(
        prog="pyworkflow",
        description="Run durable plan-and-execute agents, watch them, inspect runs, decide approvals.",
        parents=[common],
        epilog="exit codes: 0 ok/completed, 1 run failed or cancelled, 2 usage error, 3 not found, "
        "4 waiting for approval, 5 hook already decided/expired or invalid payload, 130 interrupted",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _run.add_parser(commands, common)
    _inspect.add_parsers(commands, common)
    _approvals.add_parsers(commands, common)
    _run.add_cancel_parser(commands, common)
    _worker.add_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage and 0 after --help
        return int(exc.code or 0)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    args.database_url = getattr(args, "database_url", None)
    for stream in (sys.stdout, sys.stderr):
        # Tree glyphs fall back to ASCII where the encoding lacks them; anything else that
        # does not fit (a model's answer, say) is shown as "?" rather than crashing the command.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    try:
        return int(args.handler(args))
    except CommandError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # `pyworkflow events ... | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return Exit.OK
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            if os.environ.get("PYWORKFLOW_DEBUG"):
                traceback.print_exc()
            _error(
                f"unexpected {type(exc).__name__}: {exc} (set PYWORKFLOW_DEBUG=1 for the traceback)"
            )
            return Exit.RUN_FAILED
        _error(str(exc))
        return code


def _exit_code(exc: Exception) -> int | None:
    from pyworkflow import exceptions as e

    if isinstance(exc, (e.RunNotFoundError, e.HookNotFoundError)):
        return Exit.NOT_FOUND
    if isinstance(exc, (e.HookAlreadyDecidedError, e.HookExpiredError, e.InvalidHookPayloadError)):
        return Exit.CONFLICT
    if isinstance(exc, e.ConfigurationError):
        return Exit.USAGE
    if isinstance(exc, e.PyWorkflowError):
        return Exit.RUN_FAILED
    return None


def _error(message: str) -> None:
    first, *rest = message.strip().splitlines() or [""]
    print(f"pyworkflow: error: {first}", file=sys.stderr)
    for line in rest:  # a plan's validation problems are one per line; keep them
        print(f"  {line.strip()}", file=sys.stderr)
