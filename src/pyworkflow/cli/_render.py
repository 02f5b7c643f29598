"""How runs look in a terminal: the plan tree, the live frame and log lines.

Pure text: nothing here writes to a terminal or reads the database. Lines are built from
`Part`s (text plus an optional colour) so they can be cut to the terminal's width by their
visible length before colour codes are added.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pyworkflow.cli._state import PlanView, RunView, StepState, StepView, UnitView, step_depths
from pyworkflow.events import Event, EventType

_COLOURS = {
    "green": "32",
    "red": "31",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "dim": "2",
    "bold": "1",
    "cyan": "36",
}
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@dataclass(frozen=True)
class Glyphs:
    """The symbols of the tree; ASCII ones for terminals that cannot show Unicode."""

    branch: str
    last: str
    pipe: str
    space: str
    icons: dict[str, str]
    spinner: str
    dot: str
    arrow: str

    @classmethod
    def for_encoding(cls, encoding: str | None) -> Glyphs:
        try:
            "├─└│✓✗○↻⏸⠋·←→".encode(encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            return cls(
                "|- ",
                "`- ",
                "|  ",
                "   ",
                _ASCII_ICONS,
                "-\\|/",
                "-",
                "<-",
            )
        return cls("├─ ", "└─ ", "│  ", "   ", _ICONS, _SPINNER, "·", "←")


_ICONS = {
    "waiting": "○",
    "running": "●",
    "done": "✓",
    "failed": "✗",
    "replanned": "↻",
    "approval": "⏸",
}
_ASCII_ICONS = {
    "waiting": "o",
    "running": "*",
    "done": "+",
    "failed": "x",
    "replanned": "~",
    "approval": "?",
}
_STATE_COLOUR = {
    "waiting": "dim",
    "running": "yellow",
    "done": "green",
    "failed": "red",
    "replanned": "magenta",
    "approval": "cyan",
}
_STATE_WORD = {
    "waiting": "waiting",
    "running": "running",
    "done": "done",
    "failed": "failed",
    "replanned": "replanned",
    "approval": "awaiting approval",
}

Part = tuple[str, str | None]


class Painter:
    """Turns parts into text, with ANSI colours when `colour` is on."""

    def __init__(self, *, colour: bool) -> None:
        self.colour = colour

    def line(self, parts: list[Part], width: int | None = None) -> str:
        out: list[str] = []
        room = width if width is not None else 1 << 30
        for text, colour in parts:
            if room <= 0:
                break
            if len(text) > room:
                text = text[: max(room - 1, 0)] + "…"
            room -= len(text)
            out.append(self.paint(text, colour))
        return "".join(out)

    def paint(self, text: str, colour: str | None) -> str:
        if not self.colour or colour is None or not text:
            return text
        codes = ";".join(_COLOURS[c] for c in colour.split("+"))
        return f"\x1b[{codes}m{text}\x1b[0m"


# --- small formats ----------------------------------------------------------------------------


def plural(count: int, noun: str) -> str:
    """`1 step`, `3 steps`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration(seconds: float | None) -> str:
    """`0.32s`, `12.3s`, `2m05s`, `1h02m`."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def age(timestamp: float | None, now: float | None = None) -> str:
    """How long ago: `5s ago`, `3m ago`, `2h ago`, `4d ago`."""
    if timestamp is None:
        return "-"
    seconds = max((now if now is not None else time.time()) - timestamp, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def preview(value: Any, limit: int | None = 80) -> str:
    """A one-line view of a value: strings quoted, the rest as compact JSON, cut at `limit`."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def cost(view: RunView) -> str:
    value = view.cost()
    if value is not None:
        return f"${value:.4f}"
    return "n/a (unpriced model)" if view.unpriced() else "-"


def tokens(view: RunView) -> str:
    if view.usage is not None:
        return f"{view.tokens():,} tokens"
    return f"{view.planner_tokens:,} planner + {view.executor_tokens:,} executor tokens"


# --- the plan as a tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class TreeRow:
    prefix: str  # the connectors before the step
    child_prefix: str  # what lines under the step (fan-out items) start with
    step: StepView
    extra_deps: tuple[int, ...]  # dependencies not shown by the nesting


def tree(steps: list[StepView], glyphs: Glyphs) -> list[TreeRow]:
    """Steps nested under their deepest dependency; other dependencies listed beside them.

    A plan is a DAG, not a tree: a step with several dependencies appears once, under the one
    that finishes last in the longest chain, and names the others.
    """
    ids = {s.id for s in steps}
    depths = step_depths(steps)
    parent: dict[int, int] = {}
    for s in steps:
        inside = [d for d in s.depends_on if d in ids]
        if inside:
            parent[s.id] = max(inside, key=lambda d: (depths[d], d))
    children: dict[int | None, list[StepView]] = defaultdict(list)
    for s in steps:
        children[parent.get(s.id)].append(s)
    rows: list[TreeRow] = []

    def walk(node: StepView, prefix: str, last: bool) -> None:
        below = prefix + (glyphs.space if last else glyphs.pipe)
        extra = tuple(d for d in node.depends_on if d != parent.get(node.id))
        if node.id in parent and len(node.depends_on) > 1:
            extra = node.depends_on
        rows.append(TreeRow(prefix + (glyphs.last if last else glyphs.branch), below, node, extra))
        kids = children.get(node.id, [])
        for i, kid in enumerate(kids):
            walk(kid, below, i == len(kids) - 1)

    roots = children.get(None, [])
    for i, root in enumerate(roots):
        walk(root, "", i == len(roots) - 1)
    return rows


def _tool(step: StepView) -> str:
    name = step.tool or "reasoning"
    if step.for_each is not None:
        name += f" x{len(step.units)}" if step.units else f" for each {step.for_each_label}"
    return name


def _elapsed(unit_or_step: UnitView | StepView, now: float) -> float | None:
    started = unit_or_step.started_at
    finished = unit_or_step.finished_at
    if isinstance(unit_or_step, UnitView) and unit_or_step.duration is not None:
        return unit_or_step.duration
    if started is None:
        return None
    return (finished if finished is not None else now) - started


def _icon(state: StepState, glyphs: Glyphs, tick: int) -> str:
    if state == "running":
        return glyphs.spinner[tick % len(glyphs.spinner)]
    return glyphs.icons[state]


def step_rows(
    steps: list[StepView],
    *,
    now: float,
    width: int,
    glyphs: Glyphs,
    tick: int = 0,
    indent: str = "  ",
    states: bool = True,
) -> list[list[Part]]:
    """The tree of `steps`, one list of parts per line, columns aligned.

    Without `states` (a plan not yet executed) the rows show structure and tools only.
    """
    rows = tree(steps, glyphs)
    lefts = [f"{r.prefix}X {r.step.id} {r.step.description}" for r in rows]
    left_width = min(max((len(x) for x in lefts), default=0), max(width // 2, 24))
    tool_width = min(max((len(_tool(r.step)) for r in rows), default=0), 24)
    lines: list[list[Part]] = []
    for row in rows:
        step = row.step
        state = step.state
        colour = _STATE_COLOUR[state]
        head = f"{row.prefix}"
        label = f" {step.id} {step.description}"
        room = left_width - len(head) - 1
        if len(label) > room:
            label = label[: max(room - 1, 1)] + "…"
        parts: list[Part] = [
            (indent + head, "dim"),
            (_icon(state, glyphs, tick), colour),
            (label.ljust(room), "bold" if state == "running" else None),
            ("  " + _tool(step).ljust(tool_width), "blue"),
        ]
        if states:
            status = _STATE_WORD[state] if state != "done" else ""
            if state in ("done", "failed", "running"):
                status = f"{status} {duration(_elapsed(step, now))}".strip()
            parts.append(("  " + status, colour if state != "done" else "dim"))
        else:
            parts[1] = (glyphs.icons["waiting"], "dim")
        if step.executor_tokens:
            parts.append((f"  {step.executor_tokens} tok", "dim"))
        if row.extra_deps:
            parts.append((f"  {glyphs.arrow} " + ", ".join(map(str, row.extra_deps)), "dim"))
        if state == "failed" and step.error:
            parts.append(("  " + step.error, "red"))
        lines.append(parts)
        if step.for_each is not None and step.units:
            lines.append(_items_line(step, row.child_prefix, now, glyphs, tick, indent))
    return lines


def _items_line(
    step: StepView, prefix: str, now: float, glyphs: Glyphs, tick: int, indent: str
) -> list[Part]:
    units = sorted(step.units.values(), key=lambda u: (u.item is None, u.item or 0))
    parts: list[Part] = [(indent + prefix + "   ", "dim")]
    if len(units) > 8:
        by_state: dict[str, int] = defaultdict(int)
        for u in units:
            by_state[u.state] += 1
        text = ", ".join(f"{n} {_STATE_WORD[s]}" for s, n in by_state.items())
        return [*parts, (f"{len(units)} items: {text}", "dim")]
    for i, u in enumerate(units):
        parts.append(("   " if i else "", None))
        parts.append((_icon(u.state, glyphs, tick), _STATE_COLOUR[u.state]))
        parts.append((f" {u.label} {duration(_elapsed(u, now))}".rstrip(), "dim"))
    return parts


# --- the live frame ---------------------------------------------------------------------------


def live_frame(
    view: RunView,
    *,
    now: float,
    width: int,
    height: int,
    glyphs: Glyphs,
    tick: int,
    painter: Painter,
) -> list[str]:
    """What the terminal shows while a run goes: header, every plan version, a status line."""
    body: list[list[Part]] = [
        [(view.agent or "agent", "bold"), (f"  {view.run_id}", "dim")],
        [("  " + view.query.replace("\n", " "), None)],
    ]
    for plan in view.plans:
        body.append(_plan_heading(plan, glyphs))
        body.extend(step_rows(plan.steps, now=now, width=width, glyphs=glyphs, tick=tick))
    for approval in view.approvals:
        if approval.decision is None and view.status == "waiting_for_approval":
            body.append([("  waiting for approval ", "cyan"), (approval.hook_id, "bold")])
    body.append(status_parts(view, now=now, glyphs=glyphs, tick=tick))
    lines = [painter.line(parts, width - 1) for parts in body]
    if len(lines) > height - 1 > 4:
        # Cursor movement cannot reach above the screen's top: keep the frame on one screen.
        hidden = len(lines) - (height - 2)
        lines = [
            *lines[:2],
            painter.line([(f"  … {hidden} more lines", "dim")], width - 1),
            *lines[-(height - 4) :],
        ]
    return lines


def _plan_heading(plan: PlanView, glyphs: Glyphs) -> list[Part]:
    text = f"plan v{plan.version} {glyphs.dot} {plural(len(plan.steps), 'step')}"
    parts: list[Part] = [(text, "bold")]
    if plan.reason:
        parts.append((f"  ({plan.reason})", "magenta"))
    if plan.outcome:
        parts.append((f"  {glyphs.dot} {plan.outcome}", "dim"))
    return parts


def status_parts(view: RunView, *, now: float, glyphs: Glyphs, tick: int = 0) -> list[Part]:
    counts = view.counts()
    end = view.finished_at if view.finished_at is not None else now
    elapsed = duration(end - view.started_at) if view.started_at is not None else ""
    state_colour = {
        "completed": "green",
        "failed": "red",
        "cancelled": "magenta",
        "waiting_for_approval": "cyan",
    }
    if view.started_at is None:
        return [(f"{glyphs.spinner[tick % len(glyphs.spinner)]} starting", "dim")]
    if view.status == "running":
        head: Part = (f"{glyphs.spinner[tick % len(glyphs.spinner)]} running", "yellow")
    else:
        head = (view.status.replace("_", " "), state_colour.get(view.status, "bold"))
    dot = f" {glyphs.dot} "
    text = (
        f"{dot}{elapsed}{dot}{counts['done']}/{counts['planned']} steps done"
        + (f" ({counts['failed']} failed)" if counts["failed"] else "")
        + (f"{dot}{plural(view.replans, 'replan')}" if view.replans else "")
        + f"{dot}{tokens(view)}{dot}cost {cost(view)}"
    )
    return [head, (text, None)]


# --- one line per event (logs, pipes, CI) -----------------------------------------------------


def event_lines(event: Event, view: RunView, glyphs: Glyphs) -> list[str]:
    """Plain lines for one event, as a log: time since the run started, then what happened.

    Call after `view.apply(event)`, so the view already includes the event.
    """
    p = event.payload
    at = (
        f"{event.timestamp - view.started_at:7.2f}s  "
        if view.started_at is not None
        else "  0.00s  "
    )
    kind = event.type
    label = p.get("label", p.get("step"))
    if kind is EventType.AGENT_STARTED:
        return [
            f"{at}started {view.agent} (planner {view.planner_model}, executor {view.executor_model})"
        ]
    if kind is EventType.AGENT_PLAN_GENERATED:
        plan = view.current_plan
        count = len(p.get("plan", []))
        lines = [
            f"{at}plan v{p.get('version', '?')}: {plural(count, 'step')}, "
            f"{p.get('planner_tokens', 0)} planner tokens"
        ]
        if plan is not None:
            for row in tree(plan.steps, glyphs):
                deps = (
                    f"  {glyphs.arrow} {', '.join(map(str, row.extra_deps))}"
                    if row.extra_deps
                    else ""
                )
                lines.append(
                    f"{' ' * 11}{row.prefix}{row.step.id} {row.step.description} [{_tool(row.step)}]{deps}"
                )
        return lines
    if kind is EventType.AGENT_STEP_STARTED:
        return [
            f"{at}step {label} running: {p.get('description', '')} [{p.get('tool') or 'reasoning'}]"
        ]
    if kind is EventType.AGENT_STEP_COMPLETED:
        took = duration(p.get("duration_s"))
        return [f"{at}step {label} done in {took}: {preview(p.get('result'), 100)}"]
    if kind is EventType.AGENT_STEP_FAILED:
        return [f"{at}step {label} failed: {p.get('error')}"]
    if kind is EventType.AGENT_REPLANNING:
        return [f"{at}replanning ({p.get('replan', view.replans)}): {p.get('reason')}"]
    if kind is EventType.AGENT_PLAN_APPROVAL_REQUESTED:
        return [
            f"{at}waiting for approval of plan v{view.current_plan.version if view.current_plan else '?'}: hook {p.get('hook_id')}"
        ]
    if kind is EventType.AGENT_STEP_APPROVAL_REQUESTED:
        return [f"{at}step {label} waiting for approval of its tool call: hook {p.get('hook_id')}"]
    if kind is EventType.AGENT_PLAN_APPROVED:
        note = f": {p['feedback']}" if p.get("feedback") else ""
        return [f"{at}plan approved{note}"]
    if kind is EventType.AGENT_PLAN_REJECTED:
        note = f": {p['feedback']}" if p.get("feedback") else ""
        return [f"{at}plan rejected{note}"]
    if kind is EventType.AGENT_EXECUTION_COMPLETED:
        return [
            f"{at}execution finished: {p.get('total_steps')} steps, {p.get('successful')} ok, "
            f"{p.get('failed')} failed, {p.get('replans')} replans"
        ]
    if kind is EventType.AGENT_COMPLETED:
        return [f"{at}completed {glyphs.dot} {tokens(view)} {glyphs.dot} cost {cost(view)}"]
    if kind is EventType.AGENT_FAILED:
        return [f"{at}failed: {p.get('error')}"]
    if kind is EventType.AGENT_CANCELLED:
        return [f"{at}cancelled"]
    return [f"{at}{kind.value.lower()} {preview(p, 100)}"]
