"""What the models are sent: the planner's tool catalogue, result blocks, and instructions."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from pyworkflow import step
from pyworkflow.agents import PlanExecuteAgent, prompts
from pyworkflow.testing import prompt_results, scripted_executor, scripted_planner


@step()
def search_web(query: str, max_results: int = 5, site: str | None = None) -> str:
    """Search the web and return the top results.

    Args:
        query: What to search for,
            in natural language.
        max_results: How many results to return.
        site: Only results from this site.
    """
    return query


@step()
def tag(labels: list[str], weights: dict[str, float], mode: Literal["fast", "exact"]) -> str:
    """Tag things."""
    return mode


class Address(BaseModel):
    street: str
    city: str


@step()
def ship(address: Address, copies: int = 1) -> str:
    """Ship a parcel."""
    return address.city


def entry(tool: Any) -> str:
    return prompts.tool_entry(
        {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    )


def test_a_tool_is_shown_as_a_signature_with_its_parameters_described() -> None:
    text = entry(search_web)
    assert text.splitlines() == [
        "- search_web(query: string, max_results: integer = 5, site: string | null = null): "
        "Search the web and return the top results.",
        "    query: What to search for, in natural language.",
        "    max_results: How many results to return.",
        "    site: Only results from this site.",
    ]


def test_lists_maps_and_choices_keep_their_types() -> None:
    signature = entry(tag).splitlines()[0]
    assert 'labels: list of string, weights: object of number, mode: "fast" | "exact"' in signature


def test_a_schema_too_rich_for_a_signature_is_sent_whole() -> None:
    text = entry(ship)
    schema = json.loads(text.split("parameters: ", 1)[1])
    assert schema == json.loads(json.dumps(ship.parameters, sort_keys=True))
    assert "$defs" in schema


def test_the_catalogue_is_shorter_than_the_schemas_it_replaces() -> None:
    schemas = len(json.dumps(search_web.parameters)) + len(json.dumps(tag.parameters))
    assert len(entry(search_web)) + len(entry(tag)) < schemas


def test_results_go_in_as_labelled_blocks_text_unescaped() -> None:
    text = prompts.results_text({"step 1: Quote": '{\n "price": 1}', "step 2: Sum": {"a": [1, 2]}})
    assert text == '[step 1: Quote]\n{\n "price": 1}\n\n[step 2: Sum]\n{"a": [1, 2]}'
    assert prompts.results_text({}) == "(none)"


@pytest.mark.usefixtures("runtime")
async def test_the_answer_follows_the_agents_instructions_and_filling_does_not_see_them() -> None:
    @step()
    def lookup(key: str) -> str:
        """Look a key up."""
        return 'value with "quotes"\nand a second line'

    seen: dict[str, tuple[str, str]] = {}

    def executor(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = "\n".join(
            p.content
            for m in messages
            for p in m.parts
            if isinstance(getattr(p, "content", None), str)
        )
        if info.function_tools:
            seen["fill"] = (info.instructions or "", prompt)
            return ModelResponse(parts=[ToolCallPart("lookup", {"key": "k2"})])
        seen["answer"] = (info.instructions or "", prompt)
        return ModelResponse(parts=[TextPart("done")])

    plan = [
        {"step": 1, "description": "Look up k1", "tool": "lookup", "params": {"key": "k1"}},
        {"step": 2, "description": "Look up the key k1 names", "tool": "lookup", "depends_on": [1]},
    ]
    agent = PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=FunctionModel(executor),
        tools=[lookup],
        instructions="Answer in French.",
        name=f"tests.prompts:{uuid.uuid4().hex}",
    )
    result = await agent.run("find k1")
    assert result.status == "completed", result.error
    instructions, prompt = seen["answer"]
    assert instructions.startswith(prompts.ANSWER) and instructions.endswith("Answer in French.")
    assert '[step 1: Look up k1]\nvalue with "quotes"\nand a second line' in prompt
    assert "Answer in French." not in seen["fill"][0]
    assert '[$1]\nvalue with "quotes"' in seen["fill"][1]


@pytest.mark.usefixtures("runtime")
async def test_the_answer_sees_each_fan_out_element_labelled_with_its_element() -> None:
    @step()
    def companies() -> list[str]:
        """The companies."""
        return ["Acme", "Globex"]

    @step()
    def revenue(company: str) -> str:
        """A company's revenue."""
        return f"{company} made $1B"

    plan = [
        {"step": 1, "description": "List companies", "tool": "companies"},
        {"step": 2, "tool": "revenue", "params": {"company": "$item"}, "for_each": "$1"},
    ]
    executor = scripted_executor(answer=lambda prompt: prompt)
    agent = PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=executor.model,
        tools=[companies, revenue],
        name=f"tests.prompts:{uuid.uuid4().hex}",
    )
    result = await agent.run("Revenues")
    assert result.status == "completed", result.error
    assert result.answer.endswith(
        '[step 1: List companies]\n["Acme", "Globex"]\n\n'
        '[step 2a (Acme): revenue(company="$item")]\nAcme made $1B\n\n'
        '[step 2b (Globex): revenue(company="$item")]\nGlobex made $1B'
    )


def test_scripted_models_read_back_the_results_they_are_shown() -> None:
    results = {"$1": 'text with "quotes"\n\nand a blank line', "$2": {"rows": [1, 2]}, "$3": "[x]"}
    prompt = "Step: s\n\nResults this step depends on:\n" + prompts.results_text(results)
    assert prompt_results(prompt) == {
        "$1": 'text with "quotes"\n\nand a blank line',
        "$2": {"rows": [1, 2]},
        "$3": "[x]",
    }
    assert prompt_results("no results here") == {}
