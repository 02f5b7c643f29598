"""One response's usage, normalised, and its price from genai-prices.

Token counts follow pydantic-ai's normalisation, the same for every provider: `input_tokens`
counts every input token, cached ones included (Anthropic reports those apart; they are added
back), and `cache_read_tokens` / `cache_write_tokens` say how many of them were read from or
written to the provider's prompt cache. The price is genai-prices' for the model the provider
says answered; a model or provider it does not know, or a response without usage, is priced
None and counted in `unpriced_requests` — never as free.
"""

from __future__ import annotations

from pydantic_ai import messages as pai_messages

from pyworkflow.agents.result import TokenUsage

__all__ = ["price_usd", "usage_of"]


def usage_of(response: pai_messages.ModelResponse, requested_model: str = "") -> TokenUsage:
    """Normalise a response's usage and price it."""
    usage = response.usage
    cost = price_usd(response, requested_model)
    return TokenUsage(
        requests=1,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=cost,
        unpriced_requests=0 if cost is not None else 1,
    )


def price_usd(response: pai_messages.ModelResponse, requested_model: str = "") -> float | None:
    """The response's price in USD, or None when genai-prices cannot price it."""
    if not response.model_name and requested_model:
        response = _with_model_name(response, requested_model)
    if not response.model_name or not response.provider_name:
        return None  # scripted models (FunctionModel, TestModel) have no price
    try:
        return float(response.cost().total_price)
    except (LookupError, ValueError, AssertionError):
        # LookupError: model or provider unknown to genai-prices; ValueError: usage it cannot
        # price (missing, or cache counts larger than the input).
        return None


def _with_model_name(response: pai_messages.ModelResponse, name: str) -> pai_messages.ModelResponse:
    from dataclasses import replace

    return replace(response, model_name=name)
