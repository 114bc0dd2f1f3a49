"""What Gemini requests cost, estimated from their token counts.

Prices per million tokens, paid tier, as Google published them for each
model (December 2026). An unknown model is priced like the default one, so
the estimate stays an estimate rather than zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicio.domain import Usage


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    audio_in: float
    text_in: float
    output: float


PRICES = {
    "gemini-2.5-flash-lite": Price(audio_in=0.30, text_in=0.10, output=0.40),
    "gemini-3.1-flash-lite": Price(audio_in=0.50, text_in=0.25, output=1.50),
    "gemini-3.5-flash-lite": Price(audio_in=0.30, text_in=0.30, output=2.50),
}
DEFAULT = PRICES["gemini-2.5-flash-lite"]


def estimate_cost(model: str, usage: Usage) -> float:
    """Return the estimated cost in US dollars; thinking bills as output."""
    price = PRICES.get(model, DEFAULT)
    output = usage.output_tokens + usage.thought_tokens
    total = (
        usage.audio_tokens * price.audio_in
        + usage.text_tokens * price.text_in
        + output * price.output
    )
    return total / 1_000_000
