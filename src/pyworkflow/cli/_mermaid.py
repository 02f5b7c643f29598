"""The plan as a Mermaid flowchart, for `pyworkflow show RUN_ID --mermaid`."""

from __future__ import annotations

from collections import defaultdict

from pyworkflow.cli._state import StepView

_MERMAID_CLASSES = {
    "done": "fill:#dcfce7,stroke:#15803d",
    "running": "fill:#fef9c3,stroke:#a16207",
    "failed": "fill:#fee2e2,stroke:#b91c1c",
    "replanned": "fill:#f3e8ff,stroke:#7e22ce,stroke-dasharray:4",
    "waiting": "fill:#f1f5f9,stroke:#64748b",
    "approval": "fill:#e0f2fe,stroke:#0369a1",
}


def _mermaid_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def mermaid(steps: list[StepView], *, states: bool = True) -> str:
    """The plan as a Mermaid flowchart: one node per step, an edge per dependency."""
    lines = ["flowchart TD"]
    ids = {s.id for s in steps}
    for s in steps:
        tool = s.tool or "reasoning"
        if s.for_each is not None:
            tool += f", for each {s.for_each_label}"
        lines.append(
            f'    s{s.id}["{s.id}. {_mermaid_text(s.description)}<br/><i>{_mermaid_text(tool)}</i>"]'
        )
    for s in steps:
        for d in s.depends_on:
            if d in ids:
                lines.append(f"    s{d} --> s{s.id}")
    if states:
        used: dict[str, list[str]] = defaultdict(list)
        for s in steps:
            used[s.state].append(f"s{s.id}")
        for state, nodes in used.items():
            lines.append(f"    classDef {state} {_MERMAID_CLASSES[state]}")
            lines.append(f"    class {','.join(nodes)} {state}")
    return "\n".join(lines)
