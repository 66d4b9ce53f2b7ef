"""When to retry a call to the LLM endpoint and how long to wait first: the one retry policy.

Modelled on openai-python's ``_should_retry`` / ``_calculate_retry_timeout``: the server's own
advice wins (``x-should-retry``, ``retry-after-ms``, ``Retry-After``), otherwise exponential backoff
with full jitter so that a crowd of callers that failed together does not come back together.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from reviewlens.config import DEFAULT_MAX_ATTEMPTS, DEFAULT_REVIEW_DEADLINE_S, LLMSettings

DEFAULT_INITIAL_BACKOFF_S = 0.5
DEFAULT_MAX_BACKOFF_S = 8.0
# A server asking for a longer pause than this is treated as broken advice; fall back to backoff.
DEFAULT_MAX_RETRY_AFTER_S = 60.0

# 408 timeout, 409 lock conflict, 429 rate limit: transient by definition; 5xx: the server's fault.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# Client mistakes: retrying sends the same wrong request again.
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 422})


def should_retry_status(status: int | None, headers: Mapping[str, str] | None = None) -> bool:
    """Say whether a failed attempt is worth repeating; ``status=None`` means a network error or timeout."""
    advice = (headers or {}).get("x-should-retry")
    if advice == "true":
        return True
    if advice == "false":
        return False
    if status is None:
        return True
    if status in NEVER_RETRY_STATUSES:
        return False
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Read the server's requested wait in seconds from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date; ``now`` (epoch seconds) is for tests. Returns None
    when absent or unparseable, and never a negative wait.
    """
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of one request: how many attempts, until when, and how long between them."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    deadline_s: float = DEFAULT_REVIEW_DEADLINE_S
    initial_backoff_s: float = DEFAULT_INITIAL_BACKOFF_S
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: LLMSettings, **overrides: object) -> RetryPolicy:
        """Build the policy from the run's settings (attempt bound and per-review deadline)."""
        values: dict[str, object] = {
            "max_attempts": max(1, settings.max_attempts),
            "deadline_s": settings.review_deadline_s,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def should_retry(self, attempt: int, status: int | None, headers: Mapping[str, str] | None) -> bool:
        """Say whether attempt number ``attempt`` (1-based), which failed, may be followed by another."""
        return attempt < self.max_attempts and should_retry_status(status, headers)

    def backoff_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff after attempt ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1))
        return self.rng.uniform(0.0, ceiling)

    def wait_s(self, attempt: int, headers: Mapping[str, str] | None) -> float:
        """How long to wait before the next attempt: the server's advice if sane, else backoff."""
        advised = parse_retry_after(headers)
        if advised is not None and advised <= self.max_retry_after_s:
            return advised
        return self.backoff_s(attempt)
