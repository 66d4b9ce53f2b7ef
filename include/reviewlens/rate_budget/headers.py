"""Read the provider's ``x-ratelimit-*`` reply headers (OpenAI's names and duration formats)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """Seconds in an OpenAI/Go duration like ``"1s"``, ``"6m0s"``, ``"120ms"``, ``"1h2m3.5s"`` or ``"0.5"``.

    Returns None when the value is missing or not a duration.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))  # bare number: seconds
    except ValueError:
        pass
    total = 0.0
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class RateLimitHeaders:
    """What one reply said about the account's limits; fields are None when absent."""

    limit_requests: float | None = None
    limit_tokens: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        return cls(
            limit_requests=_number(headers.get("x-ratelimit-limit-requests")),
            limit_tokens=_number(headers.get("x-ratelimit-limit-tokens")),
            remaining_requests=_number(headers.get("x-ratelimit-remaining-requests")),
            remaining_tokens=_number(headers.get("x-ratelimit-remaining-tokens")),
            reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
            reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        )

    def exhausted_for_s(self, request_tokens: float = 0.0) -> float:
        """How long the provider says it is full (a remaining count at 0); 0 if it is not.

        ``reset-*`` is the time until the provider's bucket is *full* again; the next request only
        needs one request's worth, so when the limit is known the wait is capped at that.
        """
        waits = [0.0]
        if self.remaining_requests is not None and self.remaining_requests <= 0:
            wait = self.reset_requests_s or 0.0
            if self.limit_requests:
                wait = min(wait, 60.0 / self.limit_requests)
            waits.append(wait)
        if self.remaining_tokens is not None and self.remaining_tokens <= 0:
            wait = self.reset_tokens_s or 0.0
            if self.limit_tokens and request_tokens > 0:
                wait = min(wait, 60.0 * request_tokens / self.limit_tokens)
            waits.append(wait)
        return max(waits)
