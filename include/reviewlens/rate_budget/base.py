"""The ``RateBudget`` interface and the scheduling all backends share.

A caller reserves one request and its expected tokens with ``acquire`` before sending, and
``settle``s the reservation with the real usage afterwards. ``acquire`` hands out *slots*: the
process holds leased stretches of the account's request and token timelines (``bucket.py``), and
each caller, first come first served, takes the next slot and sleeps until its instant. Backends
only implement ``_take`` (lease the next stretches from the store), ``_publish_pause`` (tell the
other users of the store) and ``_give_back`` (return an unused tail on close).

A shared backend leases about ``lease_s`` of the timeline at a time (0.2 s: 20 requests at 6,000
RPM, 98 at 30,000), so the store sees a few round trips per second whatever the rate. A lease is
sized to the callers actually waiting, so a process near its end does not hold slots it cannot use.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace

from reviewlens.rate_budget.bucket import Lease, Limits
from reviewlens.rate_budget.headers import RateLimitHeaders

log = logging.getLogger(__name__)

# A "remaining 0" pause shorter than this is not written to a shared store: every process reads the
# same headers on its own replies, and the store must not be written per request at the limit.
MIN_SHARED_HINT_PAUSE_S = 0.25
# Re-check at least this often while waiting (a pause or new limits may have appeared).
MAX_WAIT_STEP_S = 1.0
# When the store cannot be reached after it once was: wait this long and lease again.
RECONNECT_WAIT_S = 0.5
# Instants on the store's clock that differ by less than this are the same instant (float rounding).
SAME_INSTANT_S = 1e-6


@dataclass
class Reservation:
    """One request's claim on the budget: what was reserved, to be settled with what was used."""

    tokens: int
    requests: int = 1
    settled: bool = False


class RateBudget(ABC):
    """Requests/minute and tokens/minute of one provider account, shared by everyone who holds it."""

    #: Seconds of the timeline taken from the store per lease (0 = exactly what the caller needs).
    lease_s: float
    #: True when the store's clock is this process's ``time.monotonic()`` (no offset to estimate).
    local_clock: bool = False

    def __init__(self, limits: Limits, *, lease_s: float = 0.0) -> None:
        self.lease_s = lease_s
        self._limits = limits
        self._configured = limits
        self._lock = asyncio.Lock()
        self._queued = 0  # callers waiting behind the one being served: sizes the next lease
        self._paused_until = 0.0  # monotonic
        self._published_until = 0.0  # monotonic end of the last pause written to the store
        # The leased stretches, on this process's monotonic clock: the next free slot and the end.
        self._r_next = self._r_end = 0.0
        self._t_start = self._t_next = self._t_end = 0.0
        # The same ends on the store's clock: to tell a contiguous lease and to give a tail back
        # (0 = nothing leased yet; store instants are always far from 0).
        self._r_end_store = self._t_end_store = 0.0
        self._offset = 0.0  # store clock - monotonic
        self._best_rtt = math.inf
        self._background: set[asyncio.Task[None]] = set()
        self._typical_tokens = 0.0  # smoothed size of a reservation, to size leases and waits
        self.leases = 0

    @property
    def limits(self) -> Limits:
        """The limits in force: configured ones, or those adopted from the provider's headers."""
        return self._limits

    @property
    def paused_for_s(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self, tokens: int, *, lease: bool = True) -> Reservation:
        """Wait until one request of ``tokens`` tokens may go, and reserve it.

        ``lease=False`` leases exactly this request's slot, never a stretch ahead: for a request
        that goes alone while the others wait (the key is not proven yet).
        """
        tokens = max(0, int(tokens))
        self._typical_tokens += 0.1 * (tokens - self._typical_tokens)
        if self._limits.unlimited and time.monotonic() >= self._paused_until:
            return Reservation(tokens)
        self._queued += 1
        try:
            await self._lock.acquire()  # FIFO: callers are served in arrival order
        finally:
            self._queued -= 1
        try:
            await self._wait_for_slot(tokens, lease)
        finally:
            self._lock.release()
        return Reservation(tokens)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Give back what a request reserved but did not use, or charge what it used beyond."""
        if reservation.settled:
            return
        reservation.settled = True
        rate = self._limits.token_rate
        difference = reservation.tokens - max(0, int(actual_tokens))
        if rate is None or difference == 0:
            return
        # Unused tokens return to this process's own stretch (never into another's); an overrun
        # moves the cursor on, past the stretch's end if need be: the next lease pays that debt.
        self._t_next = max(self._t_start, self._t_next - difference / rate)

    async def pause_until(self, deadline: float, *, drain: bool = True) -> None:
        """Hold every caller of this budget until the monotonic time ``deadline``."""
        await self.pause_for(deadline - time.monotonic(), drain=drain)

    async def pause_for(self, seconds: float, *, drain: bool = True) -> None:
        """Hold every caller of this budget (in every process sharing it) for ``seconds``.

        ``drain=True`` is for a 429 (we overshot: the slots leased before it are dropped, so that
        callers don't stampede when it ends); ``drain=False`` for a provider's "remaining 0, resets
        in X" (only "not before").
        """
        if seconds <= 0:
            return
        self._pause_locally(seconds, drop=drain)
        self._published_until = max(self._published_until, time.monotonic() + seconds)
        await self._publish_pause(seconds)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Learn from a reply's ``x-ratelimit-*`` headers: adopt unknown limits, honour "remaining 0"."""
        info = RateLimitHeaders.parse(headers)
        adopted = self._limits
        if self._configured.requests_per_minute is None and info.limit_requests:
            adopted = replace(adopted, requests_per_minute=info.limit_requests)
        if self._configured.tokens_per_minute is None and info.limit_tokens:
            adopted = replace(adopted, tokens_per_minute=info.limit_tokens)
        if adopted != self._limits:
            log.info(
                "adopting the provider's limits: %s requests/min, %s tokens/min",
                adopted.requests_per_minute,
                adopted.tokens_per_minute,
            )
            self._limits = adopted
        wait = info.exhausted_for_s(self._typical_tokens)
        if wait > 0:
            self._pause_locally(wait, drop=False)
            until = time.monotonic() + wait
            if wait >= MIN_SHARED_HINT_PAUSE_S and until > self._published_until + MIN_SHARED_HINT_PAUSE_S:
                self._published_until = until
                self._spawn(self._publish_pause(wait))

    async def aclose(self) -> None:
        """Give back unused slots, finish background work and release the store's connection."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        now = time.monotonic()  # slots before now are gone anyway
        unused_r = max(0.0, self._r_end - max(self._r_next, now))
        unused_t = max(0.0, self._t_end - max(self._t_next, now))
        if unused_r > 0 or unused_t > 0:
            self._r_next, self._t_next = self._r_end, self._t_end
            r_end, t_end = self._r_end_store, self._t_end_store
            try:
                await self._give_back(r_end - unused_r, r_end, t_end - unused_t, t_end)
            except Exception as exc:  # only an optimisation: the slots are merely wasted
                log.debug("could not give unused slots back (%s)", type(exc).__name__)

    async def __aenter__(self) -> RateBudget:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- backends ----------------------------------------------------------------------------

    @abstractmethod
    async def _take(self, request_span_s: float, token_span_s: float) -> Lease | None:
        """Lease the next stretches of the timelines; None if the store is unreachable for now."""

    @abstractmethod
    async def _publish_pause(self, seconds: float) -> None:
        """Record a pause in the store so that every other user of the account waits too."""

    @abstractmethod
    async def _give_back(
        self, request_from: float, request_end: float, token_from: float, token_end: float
    ) -> None:
        """Move the store's free instants back to ``*_from`` if they still stand at ``*_end``."""

    # -- the schedule --------------------------------------------------------------------------

    async def _wait_for_slot(self, tokens: int, lease: bool) -> None:
        """Take the next slot of this process's stretches (leasing more when they run out) and sleep to it."""
        while True:
            now = time.monotonic()
            if now < self._paused_until:
                await asyncio.sleep(min(self._paused_until - now, MAX_WAIT_STEP_S))
                continue
            limits = self._limits
            if limits.unlimited:
                return
            r_rate, t_rate = limits.request_rate, limits.token_rate
            oldest = now - limits.burst_s  # a slot further behind than this is dropped
            request_span = token_span = 0.0
            if r_rate is not None:
                step = 1.0 / r_rate
                if self._r_next < oldest:
                    self._r_next = min(oldest, self._r_end)
                if self._r_next + step > self._r_end + SAME_INSTANT_S:
                    request_span = step * self._requests_to_lease(r_rate, lease)
            if t_rate is not None:
                if self._t_next < oldest:
                    self._t_next = min(oldest, self._t_end)
                need = tokens / t_rate
                if self._t_next + need > self._t_end + SAME_INSTANT_S:
                    token_span = need + max(0.0, self._t_next - self._t_end)  # plus any debt
                    if lease and self.lease_s > 0:
                        token_span += min(self.lease_s, self._queued * self._typical_tokens / t_rate)
            if request_span > 0 or token_span > 0:
                if not await self._extend(request_span, token_span):
                    await asyncio.sleep(RECONNECT_WAIT_S)
                continue
            send_at = max(
                self._r_next if r_rate is not None else now,
                self._t_next if t_rate is not None else now,
            )
            if send_at > now:
                await asyncio.sleep(min(send_at - now, MAX_WAIT_STEP_S))
                continue
            if r_rate is not None:
                self._r_next += 1.0 / r_rate
            if t_rate is not None:
                self._t_next += tokens / t_rate
            return

    def _requests_to_lease(self, rate: float, lease: bool) -> int:
        if not lease or self.lease_s <= 0:
            return 1
        return max(1, min(math.floor(rate * self.lease_s), self._queued + 1))

    async def _extend(self, request_span: float, token_span: float) -> bool:
        """Lease more of the timelines and append them to this process's stretches."""
        before = time.monotonic()
        taken = await self._take(request_span, token_span)
        after = time.monotonic()
        if taken is None:
            return False
        self.leases += 1
        if not self.local_clock:
            # The store's clock against ours, from the quickest round trip seen (error <= rtt / 2).
            rtt = after - before
            if rtt <= self._best_rtt + 0.001:
                self._best_rtt = min(self._best_rtt, rtt)
                self._offset = taken.now - (before + after) / 2
        offset = self._offset
        if request_span > 0:
            if abs(taken.request_start - self._r_end_store) < SAME_INSTANT_S:
                self._r_end += request_span  # right after our last stretch: one longer stretch
            else:
                self._r_next = taken.request_start - offset
                self._r_end = self._r_next + request_span
            self._r_end_store = taken.request_start + request_span
        if token_span > 0:
            if abs(taken.token_start - self._t_end_store) < SAME_INSTANT_S:
                self._t_end += token_span
            else:
                debt = max(0.0, self._t_next - self._t_end)
                self._t_start = taken.token_start - offset
                self._t_next = self._t_start + debt
                self._t_end = self._t_start + token_span
            self._t_end_store = taken.token_start + token_span
        paused_until = taken.paused_until - offset
        if paused_until > self._paused_until:  # another process's pause, seen in the store
            self._paused_until = paused_until
        return True

    def _pause_locally(self, seconds: float, *, drop: bool) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        if drop:  # slots leased before a 429 must not all go the moment it ends
            self._r_next = self._r_end
            self._t_next = max(self._t_next, self._t_end)

    def _spawn(self, coroutine: object) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        except RuntimeError:  # no loop (called from sync code): the local pause is enough
            coroutine.close()  # type: ignore[attr-defined]
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)
