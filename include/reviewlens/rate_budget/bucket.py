"""The token-bucket arithmetic every budget backend shares (in memory, in Postgres, in Redis).

A bucket row holds two levels (requests and tokens) that refill continuously at a rate slightly
under the account's limit, up to a small burst capacity. A *grant* hands out credit in one step:
requests only as whole units, tokens possibly beyond the level (the bucket goes into debt) so that
a request larger than the burst capacity still gets through once the bucket is full. Pure functions
on plain numbers so that the Postgres backend can run them inside a row-locked transaction and the
Redis backend can mirror them in Lua.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Aim this fraction of the provider's limit so that its own bucket never overflows.
DEFAULT_SAFETY = 0.98
# Burst capacity in seconds of refill: providers (and the simulator) allow about one second's worth.
DEFAULT_BURST_S = 0.5


@dataclass(frozen=True)
class Limits:
    """The account's limits and how close to them we run; ``None`` means unlimited."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    safety: float = DEFAULT_SAFETY
    burst_s: float = DEFAULT_BURST_S

    @property
    def unlimited(self) -> bool:
        return self.requests_per_minute is None and self.tokens_per_minute is None

    @property
    def request_rate(self) -> float | None:
        """Requests per second we allow ourselves."""
        rpm = self.requests_per_minute
        return None if rpm is None else rpm * self.safety / 60.0

    @property
    def token_rate(self) -> float | None:
        """Tokens per second we allow ourselves."""
        tpm = self.tokens_per_minute
        return None if tpm is None else tpm * self.safety / 60.0

    @property
    def request_capacity(self) -> float:
        rate = self.request_rate
        return math.inf if rate is None else max(1.0, rate * self.burst_s)

    @property
    def token_capacity(self) -> float:
        rate = self.token_rate
        return math.inf if rate is None else max(1.0, rate * self.burst_s)


@dataclass(frozen=True)
class BucketRow:
    """Stored state of one account's bucket; times are seconds on the store's clock."""

    request_level: float = 0.0
    token_level: float = 0.0
    updated_at: float = 0.0  # 0 = never used: the first refill fills the bucket
    paused_until: float = 0.0


@dataclass(frozen=True)
class Grant:
    """Credit handed out by one grant; ``wait_s`` > 0 when nothing could be granted yet."""

    requests: int
    tokens: float
    wait_s: float = 0.0
    paused_until: float = 0.0  # on the store's clock, so callers can mirror a shared pause


def refill(row: BucketRow, now: float, limits: Limits) -> BucketRow:
    """Add what the rates earned since ``updated_at`` (never past capacity, never before a pause ends)."""
    elapsed = max(0.0, now - row.updated_at)
    requests = row.request_level
    tokens = row.token_level
    if limits.request_rate is not None:
        requests = min(limits.request_capacity, requests + limits.request_rate * elapsed)
    if limits.token_rate is not None:
        tokens = min(limits.token_capacity, tokens + limits.token_rate * elapsed)
    return replace(row, request_level=requests, token_level=tokens, updated_at=max(row.updated_at, now))


def grant(
    row: BucketRow, now: float, limits: Limits, *, want_requests: int, need_tokens: float, want_tokens: float
) -> tuple[BucketRow, Grant]:
    """Grant up to ``want_requests`` requests and ``want_tokens`` tokens, or say how long to wait.

    Something is granted only when at least one request and ``need_tokens`` (capped at the token
    capacity) are available; the token grant is then at least ``need_tokens`` even if that puts the
    bucket into debt, which later refills pay back.
    """
    if now < row.paused_until:
        return row, Grant(0, 0.0, wait_s=row.paused_until - now, paused_until=row.paused_until)
    row = refill(row, now, limits)
    req_rate, tok_rate = limits.request_rate, limits.token_rate
    token_threshold = min(need_tokens, limits.token_capacity)
    waits = [0.0]
    if req_rate is not None and row.request_level < 1.0:
        waits.append((1.0 - row.request_level) / req_rate)
    if tok_rate is not None and row.token_level < token_threshold:
        waits.append((token_threshold - row.token_level) / tok_rate)
    if max(waits) > 0.0:
        return row, Grant(0, 0.0, wait_s=max(waits), paused_until=row.paused_until)
    requests = want_requests
    if req_rate is not None:
        requests = max(1, min(want_requests, math.floor(row.request_level)))
    tokens = want_tokens
    if tok_rate is not None:
        tokens = max(need_tokens, min(want_tokens, row.token_level))
    new_row = replace(
        row,
        request_level=row.request_level - (requests if req_rate is not None else 0),
        token_level=row.token_level - (tokens if tok_rate is not None else 0.0),
    )
    return new_row, Grant(requests, tokens, paused_until=row.paused_until)


def pause(row: BucketRow, now: float, seconds: float, *, drain: bool = True) -> BucketRow:
    """Stop granting for ``seconds``.

    ``drain`` (after a 429: we overshot) also empties the bucket so that refill restarts from zero
    when the pause ends and the callers don't stampede; without it the pause is only a "not before"
    (the provider said its bucket is momentarily empty, which is normal when running at the limit).
    """
    until = max(row.paused_until, now + max(0.0, seconds))
    if not drain:
        return replace(row, paused_until=until)
    return BucketRow(
        request_level=min(row.request_level, 0.0),
        token_level=min(row.token_level, 0.0),
        updated_at=max(row.updated_at, until),
        paused_until=until,
    )
