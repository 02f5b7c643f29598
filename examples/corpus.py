"""A small offline corpus for the research agent example.

The documents read like web pages about AI companies so that the example's tools have
something to search, but the figures in them are illustrative, not real data. Nothing here
reaches the network: the example runs the same way on any machine.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["COMPANIES", "DOCUMENTS", "FACTS", "Document", "Facts"]


class Document(TypedDict):
    """One searchable page."""

    title: str
    url: str
    text: str


class Facts(TypedDict):
    """The profile `fetch_company_facts` returns for one company."""

    company: str
    founded: int
    headquarters: str
    flagship_model: str
    products: str
    funding_raised: str
    annual_revenue: str


# The names `extract_entities` recognises.
COMPANIES: tuple[str, ...] = (
    "Google DeepMind",
    "Mistral AI",
    "Anthropic",
    "OpenAI",
    "Cohere",
    "Meta",
    "xAI",
)

DOCUMENTS: tuple[Document, ...] = (
    {
        "title": "The AI companies to watch in 2026",
        "url": "https://example.com/ai-leaders-2026",
        "text": (
            "The top AI companies of 2026 by revenue and model adoption are OpenAI, "
            "Anthropic and Google DeepMind. Behind the leading three, Meta ships open-weight "
            "models, Mistral AI leads in Europe and xAI is scaling fast."
        ),
    },
    {
        "title": "Frontier labs ranked: who leads the AI race",
        "url": "https://example.com/frontier-ranking",
        "text": (
            "Ranking the frontier AI labs on research output and enterprise customers puts "
            "OpenAI first, Anthropic second and Google DeepMind third, with Cohere strong in "
            "enterprise search."
        ),
    },
    {
        "title": "OpenAI product launch: a new reasoning model family",
        "url": "https://example.com/openai-launch",
        "text": (
            "OpenAI announced a product launch this quarter: a reasoning model family for "
            "ChatGPT and the API, plus agent tooling for developers."
        ),
    },
    {
        "title": "Anthropic product launch: Claude agents for enterprises",
        "url": "https://example.com/anthropic-launch",
        "text": (
            "Anthropic's latest product launch brings Claude agents to enterprise "
            "workflows, with Claude Code adoption growing among developers."
        ),
    },
    {
        "title": "Google DeepMind product launch: Gemini in every Google product",
        "url": "https://example.com/deepmind-launch",
        "text": (
            "Google DeepMind's product launch puts Gemini models into Search, Workspace and "
            "Android, with a new Gemini release for developers on Vertex AI."
        ),
    },
    {
        "title": "Funding round-up: AI labs raise record sums",
        "url": "https://example.com/funding-roundup",
        "text": (
            "AI funding kept climbing: OpenAI, Anthropic and xAI each raised multi-billion "
            "dollar rounds, while Mistral AI closed a large European round."
        ),
    },
)

FACTS: dict[str, Facts] = {
    "OpenAI": {
        "company": "OpenAI",
        "founded": 2015,
        "headquarters": "San Francisco",
        "flagship_model": "GPT-5",
        "products": "ChatGPT, API, Codex",
        "funding_raised": "$58B",
        "annual_revenue": "$13.0B",
    },
    "Anthropic": {
        "company": "Anthropic",
        "founded": 2021,
        "headquarters": "San Francisco",
        "flagship_model": "Claude Opus",
        "products": "Claude, Claude Code, API",
        "funding_raised": "$33B",
        "annual_revenue": "$9.5B",
    },
    "Google DeepMind": {
        "company": "Google DeepMind",
        "founded": 2010,
        "headquarters": "London",
        "flagship_model": "Gemini",
        "products": "Gemini app, Vertex AI, Workspace",
        "funding_raised": "Alphabet-funded",
        "annual_revenue": "part of Alphabet",
    },
}
