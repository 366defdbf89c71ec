"""Estimated cost of token usage. Prices are US dollars per million tokens.

Defaults follow Anthropic's published list prices; ``[pricing]`` in ralph.toml overrides them per
model (a key matches a model name exactly or as a prefix). Cache writes default to 1.25x input
and cache reads to 0.1x input, as the API bills 5-minute cache entries.
"""

from __future__ import annotations

from collections.abc import Mapping

from ralph_tui.config import Price
from ralph_tui.iteration import Usage

DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-4": Price(input=15.0, output=75.0),
    "claude-opus-4-5": Price(input=5.0, output=25.0),
    "claude-sonnet-4": Price(input=3.0, output=15.0),
    "claude-haiku-4": Price(input=1.0, output=5.0),
    "claude-3-5-haiku": Price(input=0.8, output=4.0),
}
FALLBACK_PRICE = Price(input=3.0, output=15.0)


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price:
    table = {**DEFAULT_PRICES, **(overrides or {})}
    if model in table:
        return table[model]
    prefixes = sorted((k for k in table if model.startswith(k)), key=len, reverse=True)
    return table[prefixes[0]] if prefixes else FALLBACK_PRICE


def estimate_cost(model: str, usage: Usage, overrides: Mapping[str, Price] | None = None) -> float:
    if usage.cost_usd is not None:
        return usage.cost_usd
    price = price_for(model, overrides)
    cache_write = price.cache_write if price.cache_write is not None else price.input * 1.25
    cache_read = price.cache_read if price.cache_read is not None else price.input * 0.1
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * cache_write
        + usage.cache_read_input_tokens * cache_read
    )
    return total / 1_000_000
