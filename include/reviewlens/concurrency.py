"""How many requests to keep in flight: an AIMD limiter that finds the provider's comfortable load.

A sliding window, not batches: a slot frees the moment a request finishes and the next waiter
starts at once. The limit halves on a 429 (the provider said "too much"), shrinks a little when
latency climbs well above the baseline (the provider is queueing us), and grows while healthy:
by one slot per success (doubling per round trip, TCP's "slow start") until the first decrease,
then by about one slot per window of successes (congestion avoidance); always between
``min_limit`` and ``max_limit``. LLM round trips take seconds, so a purely additive climb from the
initial 64 to the hundreds a large account needs would take minutes; slow start takes a few round
trips. The latency signal compares a short-term average with a slow baseline, and is trusted only
after a window of replies (at least ``MIN_LATENCY_SAMPLES``) to requests sent after the first reply:
the first wave returns fastest first, and must not become the baseline that every ordinary reply then
looks "congested" against (a benchmark run with 146 requests sent at once shrank 71 times for it).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

DEFAULT_INITIAL_LIMIT = 64
OVERLOAD_DECREASE = 0.5  # on 429
LATENCY_DECREASE = 0.9  # on latency well above baseline: a gentler signal than a 429
# Latency (smoothed) above this multiple of the baseline means the provider is queueing us...
LATENCY_FACTOR = 3.0
# ...and only if it is also this much above it in absolute terms (ms-scale noise is not congestion).
LATENCY_MIN_EXCESS_S = 0.05
LATENCY_SMOOTHING = 0.1  # EWMA weight of one reply in the short-term latency
# The baseline is a slow EWMA of the same replies: it follows a provider that really became slower
# (or longer replies) within a few hundred replies, while a sudden queue shows as short >> baseline.
# (A minimum of the short EWMA was tried first: LLM latency is so spread, p95 ~3x the median, that
# the minimum sinks and ordinary noise then reads as congestion.)
BASELINE_SMOOTHING = 0.01
# Replies seen before latency may shrink the limit: at least this many, and at least one window.
MIN_LATENCY_SAMPLES = 32


class AdaptiveLimiter:
    """Additive-increase/multiplicative-decrease concurrency limit with FIFO waiters."""

    def __init__(
        self,
        max_limit: int,
        *,
        initial: int | None = None,
        min_limit: int = 1,
        slow_start: bool = True,
    ) -> None:
        self.max_limit = max(1, max_limit)
        self.min_limit = max(1, min(min_limit, self.max_limit))
        start = initial if initial is not None else min(self.max_limit, DEFAULT_INITIAL_LIMIT)
        self._limit = float(max(self.min_limit, min(self.max_limit, start)))
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Below this the limit grows by one per success; the first decrease sets it to the new limit.
        self._slow_start_until = float(self.max_limit) if slow_start else self._limit
        self._samples = 0
        self._last_decrease = 0.0  # monotonic; requests started before it don't decrease again
        self._first_reply_at: float | None = None
        self._smoothed_latency: float | None = None
        self._baseline: float | None = None
        self.decreases = 0
        self.lowest_limit = self.limit
        self.peak_in_flight = 0

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one slot for the body; yields the monotonic start time to report outcomes with."""
        await self.acquire()
        try:
            yield time.monotonic()
        finally:
            self.release()

    async def acquire(self) -> None:
        """Wait for a free slot (first come, first served)."""
        if self._in_flight < self.limit and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # we were handed a slot just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Free a slot and hand free slots to waiters."""
        self._in_flight -= 1
        self._wake()

    def on_success(self, started_at: float, latency_s: float) -> None:
        """Record a success (started at ``started_at``, took ``latency_s``): grow, or shrink if slow."""
        if self._first_reply_at is None:
            self._first_reply_at = time.monotonic()
        if started_at >= self._first_reply_at:
            # Replies to the first wave (sent before any reply came back) are not samples: they
            # return fastest first, and would make a baseline that every ordinary reply then exceeds.
            smoothed, baseline = self._smoothed_latency, self._baseline
            if smoothed is None or baseline is None:
                smoothed = baseline = latency_s
            else:
                smoothed += LATENCY_SMOOTHING * (latency_s - smoothed)
                baseline += BASELINE_SMOOTHING * (latency_s - baseline)
            self._smoothed_latency, self._baseline = smoothed, baseline
            self._samples += 1
        smoothed, baseline = self._smoothed_latency, self._baseline
        congested = (
            smoothed is not None
            and baseline is not None
            and self._samples >= max(MIN_LATENCY_SAMPLES, self.limit)
            and smoothed > LATENCY_FACTOR * baseline
            and smoothed - baseline > LATENCY_MIN_EXCESS_S
        )
        if congested:
            self._decrease(started_at, LATENCY_DECREASE)
        elif self._waiters or self._in_flight >= self.limit - 1:
            # Grow only when the limit is actually the constraint: +1 per success in slow start,
            # else about +1 per window of successes.
            step = 1.0 if self._limit < self._slow_start_until else 1.0 / self._limit
            self._limit = min(float(self.max_limit), self._limit + step)
            self._wake()

    def on_overload(self, started_at: float) -> None:
        """The provider answered 429 to a request that started at ``started_at``: halve the limit."""
        self._decrease(started_at, OVERLOAD_DECREASE)

    def _decrease(self, started_at: float, factor: float) -> None:
        # One decrease per round trip: replies to requests sent before the last decrease describe
        # the old load, not the new one.
        if started_at < self._last_decrease:
            return
        self._limit = max(float(self.min_limit), self._limit * factor)
        self._slow_start_until = self._limit  # from now on: additive increase
        self._last_decrease = time.monotonic()
        self.decreases += 1
        self.lowest_limit = min(self.lowest_limit, self.limit)

    def _take(self) -> None:
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)
