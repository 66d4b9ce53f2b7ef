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
DEFAULT_SAFETY = 0.985
# Burst capacity in seconds of refill. Providers (and the simulator) allow about one second's worth,
# but any 10 s window may then see safety x (10 + burst_s) / 10 of the limit: 99.5 % with 0.985 and
# 0.1 s (0.98 and 0.5 s allowed 102.9 %, which bench/throughput.py measured). It also sizes the
# lease a shared budget waits for.
DEFAULT_BURST_S = 0.1
# A lease waits for this share of the burst capacity. The rest is slack for a late poll (event-loop
# lag, a slow database round trip): refill beyond the capacity is lost, which at 500 req/s with half
# the capacity measured 1.6 % of the rate; a quarter leaves 75 ms of slack whatever the rate.
LEASE_SHARE = 0.25


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
    # After a grant: how long until the bucket holds another lease of the same size (0 = unknown).
    # A caller that runs out of credit sleeps this long instead of polling the store in vain.
    next_s: float = 0.0


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

    Something is granted only when the whole lease is there: ``want_requests`` requests and
    ``want_tokens`` tokens, each capped at ``LEASE_SHARE`` of the bucket's capacity (a local budget
    wants exactly one request and its tokens; the rest of the capacity is slack for a late poll).
    The token grant is then at least ``need_tokens`` even if that puts the bucket into debt, which
    later refills pay back. Waiting for a whole lease instead of granting whatever crumb has
    refilled keeps a shared store at a few leases per second at the limit, instead of one
    transaction per request.
    """
    if now < row.paused_until:
        return row, Grant(0, 0.0, wait_s=row.paused_until - now, paused_until=row.paused_until)
    row = refill(row, now, limits)
    req_rate, tok_rate = limits.request_rate, limits.token_rate
    waits = [0.0]
    request_threshold = 1.0
    token_threshold = 0.0
    if req_rate is not None:
        # At least two requests when the capacity holds them: a lease of one is a transaction each.
        share = max(limits.request_capacity * LEASE_SHARE, min(limits.request_capacity, 2.0))
        request_threshold = max(1.0, min(float(want_requests), math.floor(share)))
    if tok_rate is not None:
        token_share = limits.token_capacity * LEASE_SHARE
        token_threshold = min(max(need_tokens, min(want_tokens, token_share)), limits.token_capacity)
    if req_rate is not None and row.request_level < request_threshold:
        waits.append((request_threshold - row.request_level) / req_rate)
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
    next_waits = [0.0]
    if req_rate is not None:
        next_waits.append((request_threshold - new_row.request_level) / req_rate)
    if tok_rate is not None:
        next_waits.append((token_threshold - new_row.token_level) / tok_rate)
    return new_row, Grant(requests, tokens, paused_until=row.paused_until, next_s=max(next_waits))


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
