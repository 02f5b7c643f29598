"""Plan validation: every problem that would stop a plan from running, found before it runs.

Pure like `plan.py`, whose `validate_plan` this is; kept apart so parsing and checking each read
as one concept.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from pyworkflow.agents._references import (
    find_references,
    is_step_number,
    malformed_references,
    params_problems,
    parse_reference,
    references_in,
    required_params,
)

if TYPE_CHECKING:
    from pyworkflow.agents.plan import Plan, PlanStep, ToolSignature


def validate_plan(
    plan: Plan,
    tools: Mapping[str, ToolSignature],
    *,
    max_steps: int | None = None,
    completed: Collection[int] = (),
) -> list[str]:
    """Every problem that would stop `plan` from running; an empty list means it is valid.

    Args:
        plan: The plan to check.
        tools: The agent's tools, by name. A step may call only these.
        max_steps: The most steps a plan may have.
        completed: Steps finished under an earlier version of the plan; they stay referenceable.

    Returns:
        One sentence per problem, in step order, then any cycles.
    """
    if not plan.steps:
        return ["the plan has no steps"]
    errors: list[str] = []
    # A fan-out over a written list is known now; one over a result is counted when it runs.
    units = sum(len(s.for_each) if isinstance(s.for_each, list) else 1 for s in plan.steps)
    if max_steps is not None and units > max_steps:
        fanned = " (counting each element of a listed for_each)" if units > len(plan.steps) else ""
        errors.append(f"the plan has {units} steps{fanned}; max_steps is {max_steps}")
    known = {step.id for step in plan.steps} | set(completed)
    missing = "which is not in the plan" + (" or among the completed steps" if completed else "")
    seen: set[int] = set()
    for step in plan.steps:
        problems = _step_problems(step, tools, known, missing, step.id in seen)
        seen.add(step.id)
        errors += [f"step {step.id}: {problem}" for problem in dict.fromkeys(problems)]
    return errors + _cycles(plan)


def _step_problems(
    step: PlanStep, tools: Mapping[str, ToolSignature], known: set[int], missing: str, dup: bool
) -> list[str]:
    problems: list[str] = []
    if not is_step_number(step.id):
        problems.append(f"the step number must be a positive integer, got {step.id!r}")
    if dup:
        problems.append(f"the step number {step.id} is used by more than one step")
    if step.tool is not None and step.tool not in tools:
        available = ", ".join(sorted(tools))
        hint = f"the agent's tools are: {available}" if tools else "the agent has no tools"
        problems.append(f"unknown tool {step.tool!r}; {hint}")
    referenced = references_in([step.params, step.for_each])
    for dep in step.depends_on:
        if dep == step.id and dep not in referenced:
            problems.append("depends on itself")
        elif dep not in known and dep not in referenced:
            problems.append(f"depends on step {dep}, {missing}")
    refs = list(find_references(step.params))
    if isinstance(step.for_each, list):
        for element_ref in find_references(step.for_each):
            if element_ref.root is None:
                problems.append(f"{element_ref.text!r} in 'for_each' has no element to mean")
            else:
                refs.append(element_ref)
        problems += malformed_references(step.for_each)
    elif step.for_each is not None:
        ref = parse_reference(step.for_each)
        if ref is None or ref.root is None:
            problems.append(
                "'for_each' must be a reference to an earlier step's list, such as '$2' or "
                f"'$2.items', got {step.for_each!r}"
            )
        else:
            refs.append(ref)
    for ref in refs:
        if ref.root is None and step.for_each is None:
            problems.append(f"{ref.text!r} is only allowed in a step with 'for_each'")
        elif ref.root == step.id:
            problems.append(f"{ref.text!r} refers to the step itself")
        elif ref.root is not None and ref.root not in known:
            problems.append(f"{ref.text!r} refers to step {ref.root}, {missing}")
    problems += malformed_references(step.params)
    if step.tool is not None and step.tool in tools:
        schema = tools[step.tool].parameters
        problems += params_problems(step.params, step.tool, schema)
        left = [name for name in required_params(schema) if name not in step.params]
        if left and not step.described:
            problems.append(
                f"leaves {', '.join(map(repr, left))} for the executor model to fill but has no "
                "'description' saying how; add one, or give every argument"
            )
    return problems


def _cycles(plan: Plan) -> list[str]:
    """One error per distinct cycle found, each drawn in execution order from its lowest step."""
    dependents: dict[int, set[int]] = {s.id: set() for s in plan.steps if is_step_number(s.id)}
    for step in plan.steps:
        for dep in step.depends_on:
            if dep in dependents and step.id in dependents and dep != step.id:
                dependents[dep].add(step.id)
    done: set[int] = set()
    found: dict[tuple[int, ...], None] = {}
    for start in dependents:
        if start in done:
            continue
        # Iterative DFS: long chains must not hit Python's recursion limit.
        path, stack = [start], [iter(sorted(dependents[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                done.add(path.pop())
                stack.pop()
            elif nxt in path:
                cycle = path[path.index(nxt) :]
                low = cycle.index(min(cycle))
                found[tuple(cycle[low:] + cycle[:low])] = None
            elif nxt not in done:
                path.append(nxt)
                stack.append(iter(sorted(dependents[nxt])))
    return [
        "the plan has a cycle: " + " → ".join(str(n) for n in (*cycle, cycle[0])) for cycle in found
    ]
