"""Dollar cost of LLM calls from a price table kept in YAML (``data/prices.yaml`` by default).

Prices are USD per 1M tokens. ``cached_tokens`` are part of ``prompt_tokens`` (OpenAI's usage
semantics) and are billed at the cached-input price. Unknown models cost 0 and are reported as
unpriced through ``ModelPrice.known`` so a missing price never blocks a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reviewlens.errors import ConfigurationError

DEFAULT_PRICES_PATH = Path(__file__).with_name("data") / "prices.yaml"
_PER_TOKENS = 1_000_000
_SNAPSHOT = re.compile(r"^(.+?)-(?:\d{4}-\d{2}-\d{2}|\d{4})$")


class ModelPrice(BaseModel):
    """Prices of one model in USD per 1M tokens; ``known`` is False for the unknown-model default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)  # None = same as input
    batch_discount: float = Field(default=0.0, ge=0, lt=1)
    known: bool = True


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: str | None = None
    currency: str = "USD"
    default: ModelPrice = ModelPrice(input=0, output=0, known=False)
    models: dict[str, ModelPrice] = Field(default_factory=dict)


@dataclass(frozen=True)
class PriceTable:
    """Looks up a model's prices and computes the cost of a request."""

    models: dict[str, ModelPrice]
    default: ModelPrice
    as_of: str | None = None

    def price_for(self, model: str) -> ModelPrice:
        """The model's prices: exact name, else its dated snapshot's family, else the default.

        ``gpt-4o-2024-08-06`` uses ``gpt-4o``; only a date suffix maps to a family, because
        ``gpt-4o-audio-preview`` is a different product with different prices.
        """
        if model in self.models:
            return self.models[model]
        snapshot = _SNAPSHOT.match(model)
        if snapshot and snapshot.group(1) in self.models:
            return self.models[snapshot.group(1)]
        return self.default

    def is_priced(self, model: str) -> bool:
        return self.price_for(model).known

    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        batch: bool = False,
    ) -> float:
        """USD cost of one call (or of a review's share of one)."""
        price = self.price_for(model)
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        total = (
            (prompt_tokens - cached) * price.input + cached * cached_rate + completion_tokens * price.output
        ) / _PER_TOKENS
        return total * (1.0 - price.batch_discount) if batch else total


def load_prices(path: str | Path | None = None) -> PriceTable:
    """Load a price table (default ``data/prices.yaml``); ``ConfigurationError`` says what to fix."""
    file = Path(path) if path is not None else DEFAULT_PRICES_PATH
    where = f"price file {str(file)!r}"
    try:
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"The {where} does not exist. Fix the path or leave it unset.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"The {where} cannot be read as YAML: {exc}") from None
    try:
        parsed = _PriceFile.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)[:5]
        )
        raise ConfigurationError(
            f"The {where} is malformed ({problems}). Each model needs numeric input and output prices "
            "in USD per 1M tokens, optional cached_input and batch_discount (0 <= x < 1)."
        ) from None
    default = parsed.default.model_copy(update={"known": False})
    return PriceTable(models=dict(parsed.models), default=default, as_of=parsed.as_of)
