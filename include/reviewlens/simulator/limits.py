"""RPM/TPM enforcement with continuously refilled token buckets, and OpenAI's rate-limit headers.

Each limit is a bucket refilled at limit/60 per second up to a burst capacity (one second's worth
by default), so a client must actually pace itself; a per-minute window would let it burst a whole
minute's budget at once and hide pacing bugs. A request is charged prompt + completion tokens at
admission. A request costing more than the token capacity is admitted once the bucket is full and
drives it negative (debt), which keeps the long-run rate exact without starving large requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


def format_reset(seconds: float) -> str:
    """Render a duration the way OpenAI's ``x-ratelimit-reset-*`` headers do: 120ms, 1s, 1.5s, 6m0s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    hours, rest_ms = divmod(round(seconds * 1000), 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    prefix = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{prefix}{secs}s"


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (rounded up, as HTTP requires) plus exact ``retry-after-ms``."""
    seconds = max(0.0, seconds)
    return {"Retry-After": str(math.ceil(seconds)), "retry-after-ms": str(math.ceil(seconds * 1000))}


class TokenBucket:
    """A bucket of ``capacity`` refilled at ``rate`` per second; the level may go negative (debt)."""

    def __init__(self, *, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self._t = now

    def refill(self, now: float) -> None:
        if now > self._t:
            self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
            self._t = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` (capped at the capacity) is available; 0 when it is now."""
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate)

    def full_in_s(self) -> float:
        return max(0.0, (self.capacity - self.level) / self.rate)


@dataclass(frozen=True)
class Admission:
    """The outcome of asking the limiter for one request of ``tokens`` tokens."""

    ok: bool
    retry_after_s: float = 0.0
    limited_by: str | None = None  # "requests" or "tokens"


class RateLimiter:
    """Both account limits; ``None`` limits are unlimited and emit no headers."""

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        burst_requests: float | None = None,
        burst_tokens: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm, self.tpm, self._clock = rpm, tpm, clock
        now = clock()
        self.requests = (
            TokenBucket(rate=rpm / 60, capacity=burst_requests or max(1.0, rpm / 60), now=now)
            if rpm
            else None
        )
        self.tokens = (
            TokenBucket(rate=tpm / 60, capacity=burst_tokens or max(1.0, tpm / 60), now=now) if tpm else None
        )

    @property
    def unlimited(self) -> bool:
        return self.requests is None and self.tokens is None

    def admit(self, tokens: int) -> Admission:
        """Charge one request and ``tokens`` tokens if both buckets allow it, else say how long to wait."""
        if self.unlimited:
            return Admission(ok=True)
        now = self._clock()
        waits: list[tuple[float, str]] = []
        for bucket, amount, name in ((self.requests, 1, "requests"), (self.tokens, tokens, "tokens")):
            if bucket is not None:
                bucket.refill(now)
                wait = bucket.wait_s(amount)
                if wait > 0:
                    waits.append((wait, name))
        if waits:
            wait, name = max(waits)
            return Admission(ok=False, retry_after_s=wait, limited_by=name)
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= tokens
        return Admission(ok=True)

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for every configured limit (state after this request)."""
        out: dict[str, str] = {}
        if self.unlimited:
            return out
        now = self._clock()
        for bucket, limit, name in ((self.requests, self.rpm, "requests"), (self.tokens, self.tpm, "tokens")):
            if bucket is None:
                continue
            bucket.refill(now)
            out[f"x-ratelimit-limit-{name}"] = str(limit)
            out[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{name}"] = format_reset(bucket.full_in_s())
        return out
