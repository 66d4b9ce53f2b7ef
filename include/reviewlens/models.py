"""Data that crosses a boundary: reviews in, chunk descriptors through XCom, outcomes out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Sentiment = Literal["positive", "neutral", "negative"]


@dataclass(frozen=True)
class Review:
    """One review as read from the source."""

    review_id: str
    body: str
    product_id: str | None = None
    rating: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ChunkSpec:
    """A slice of one data interval, by stable key range; the only thing XCom ever carries.

    Reviews with ``interval_start <= created_at < interval_end`` and
    ``first_key <= review_id <= last_key`` belong to the chunk.
    """

    day: str
    interval_start: str
    interval_end: str
    index: int
    first_key: str
    last_key: str
    size: int

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> ChunkSpec:
        return cls(**data)


@dataclass
class ReviewOutcome:
    """How one review ended: an analysis or a failure with its reason. Exactly one per review."""

    review_id: str
    ok: bool
    sentiment: str | None = None
    categories: list[str] = field(default_factory=list)
    summary: str | None = None
    confidence: float | None = None
    language: str | None = None
    flags: list[str] = field(default_factory=list)
    reason: str | None = None  # failure code when not ok
    detail: str | None = None  # human-readable failure message (never contains secrets)
    raw_reply: str | None = None
    attempts: int = 0
    http_status: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0


@dataclass
class ChunkReport:
    """What ``analyze_chunk`` returns through XCom: counts only, never review text."""

    day: str
    index: int
    reviews: int
    analyzed: int
    failed: int
    skipped_already_done: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)
