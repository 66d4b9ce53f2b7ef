"""Explicit settings objects with their defaults in one place.

The Airflow layer (``plugins/``) builds these from connections and Params; tests and the demo
build them directly. The API key is a ``Secret`` so that it never shows up in a repr, a log line
or an exception message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

DEFAULT_MODEL = "reviewlens-sim-1"
DEFAULT_CHUNK_SIZE = 200
DEFAULT_MAX_CONCURRENCY = 256
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_REVIEW_DEADLINE_S = 600.0
DEFAULT_MAX_OUTPUT_TOKENS = 400


class Secret:
    """A string that prints as ``'***'``: use ``.reveal()`` only where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


ResponseFormat = Literal["auto", "json_schema", "json_object", "none"]


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to call the OpenAI-compatible chat-completions endpoint."""

    base_url: str
    api_key: Secret = field(default_factory=lambda: Secret(""))
    model: str = DEFAULT_MODEL
    # Provider limits of the *account* (shared by every chunk in the cluster); None = read them
    # from the provider's x-ratelimit-limit-* headers, or run unlimited.
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    review_deadline_s: float = DEFAULT_REVIEW_DEADLINE_S
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    temperature: float = 0.0
    response_format: ResponseFormat = "auto"
    reviews_per_request: int = 10  # chosen by bench/tokens.py; see docs/benchmarks.md
    # Name of the shared budget; chunks with the same key share one RPM/TPM budget.
    budget_key: str = ""

    def with_(self, **changes: object) -> LLMSettings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def account_key(self) -> str:
        """Identifies the rate-limit account without revealing the key."""
        import hashlib

        fingerprint = hashlib.sha256(self.api_key.reveal().encode()).hexdigest()[:12]
        return self.budget_key or f"{self.base_url.rstrip('/')}|{fingerprint}"


@dataclass(frozen=True)
class SourceSettings:
    """Where the reviews of a day come from (a Postgres table by default)."""

    kind: Literal["postgres", "csv", "parquet", "jsonl"] = "postgres"
    table: str = "reviews"
    schema: str = "public"
    id_column: str = "review_id"
    text_column: str = "body"
    product_column: str = "product_id"
    rating_column: str = "rating"
    time_column: str = "created_at"
    path: str | None = None  # for file sources: a file, a directory or a glob


@dataclass(frozen=True)
class RunSettings:
    """Knobs of one pipeline run that are not about the provider."""

    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_chunks: int = 1024  # stays below Airflow's max_map_length
    checkpoint_every_s: float = 5.0
    checkpoint_every_n: int = 100
    max_review_chars: int = 8000
