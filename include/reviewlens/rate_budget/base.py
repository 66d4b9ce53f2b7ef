"""The ``RateBudget`` interface and the credit bookkeeping all backends share.

A caller reserves one request and its expected tokens with ``acquire`` before sending, and
``settle``s the reservation with the real usage afterwards. Backends only implement ``_grant``
(take credit from the store's bucket) and ``_publish_pause`` (tell the other users of the store).
Credit obtained from the store is kept in process: shared backends take a *lease* of a few hundred
milliseconds' worth at a time so that the store is not hit per request; credit unused for
``CREDIT_TTL_S`` is dropped so that a lease can never turn into a late burst.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace

from reviewlens.rate_budget.bucket import Grant, Limits
from reviewlens.rate_budget.headers import RateLimitHeaders

log = logging.getLogger(__name__)

CREDIT_TTL_S = 0.5
# A "remaining 0" pause shorter than this is not written to a shared store: every process reads the
# same headers on its own replies, and the store must not be written per request at the limit.
MIN_SHARED_HINT_PAUSE_S = 0.25
# Re-check the store at least this often while waiting (a pause or new limits may have appeared).
MAX_WAIT_STEP_S = 1.0


@dataclass
class Reservation:
    """One request's claim on the budget: what was reserved, to be settled with what was used."""

    tokens: int
    requests: int = 1
    settled: bool = False


class RateBudget(ABC):
    """Requests/minute and tokens/minute of one provider account, shared by everyone who holds it."""

    #: Seconds of the rate taken from the store per grant (0 = exactly what the caller needs).
    lease_s: float = 0.0

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._configured = limits
        self._lock = asyncio.Lock()
        self._paused_until = 0.0  # monotonic
        self._published_until = 0.0  # monotonic end of the last pause written to the store
        self._request_credit = 0.0
        self._token_credit = 0.0
        self._credit_expires = 0.0
        self._next_grant_at = 0.0  # monotonic: before this the store has no full lease for us
        self._background: set[asyncio.Task[None]] = set()
        self._typical_tokens = 0.0  # smoothed size of a reservation, to size "remaining 0" waits

    @property
    def limits(self) -> Limits:
        """The limits in force: configured ones, or those adopted from the provider's headers."""
        return self._limits

    @property
    def paused_for_s(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self, tokens: int, *, lease: bool = True) -> Reservation:
        """Wait until one request of ``tokens`` tokens fits both budgets, and reserve it.

        ``lease=False`` takes exactly this request's credit from the store, never a lease ahead: for
        a request that goes alone while the others wait (credit held through its round trip would
        add to the burst that refills meanwhile, and push a 10 s window over the limit).
        """
        tokens = max(0, int(tokens))
        self._typical_tokens += 0.1 * (tokens - self._typical_tokens)
        if self._limits.unlimited and time.monotonic() >= self._paused_until:
            return Reservation(tokens)
        async with self._lock:  # FIFO: waiters are served in arrival order
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                if now > self._credit_expires:
                    self._request_credit = min(self._request_credit, 0.0)
                    self._token_credit = min(self._token_credit, 0.0)
                limits = self._limits
                if limits.unlimited or self._has_credit(tokens, limits):
                    break
                if self.lease_s > 0 and now < self._next_grant_at:
                    # The last lease said when the next one is there: don't ask the store before.
                    await asyncio.sleep(min(self._next_grant_at - now, MAX_WAIT_STEP_S))
                    self._next_grant_at = 0.0
                    continue
                grant = await self._grant(*self._wants(tokens, limits, lease=lease))
                if grant.requests > 0:
                    self._request_credit += grant.requests
                    self._token_credit += grant.tokens
                    self._credit_expires = time.monotonic() + CREDIT_TTL_S
                    self._next_grant_at = time.monotonic() + grant.next_s
                else:
                    await asyncio.sleep(min(max(grant.wait_s, 0.001), MAX_WAIT_STEP_S))
            self._request_credit -= 1
            self._token_credit -= tokens
        return Reservation(tokens)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Give back what a request reserved but did not use, or charge what it used beyond."""
        if reservation.settled:
            return
        reservation.settled = True
        difference = reservation.tokens - max(0, int(actual_tokens))
        if self._limits.token_rate is None or difference == 0:
            return
        self._token_credit += difference
        if difference > 0:
            self._credit_expires = max(self._credit_expires, time.monotonic() + CREDIT_TTL_S)

    async def pause_until(self, deadline: float, *, drain: bool = True) -> None:
        """Hold every caller of this budget until the monotonic time ``deadline``."""
        await self.pause_for(deadline - time.monotonic(), drain=drain)

    async def pause_for(self, seconds: float, *, drain: bool = True) -> None:
        """Hold every caller of this budget (in every process sharing it) for ``seconds``.

        ``drain=True`` is for a 429 (we overshot: restart from an empty bucket); ``drain=False`` for
        a provider's "remaining 0, resets in X" (only "not before").
        """
        if seconds <= 0:
            return
        self._pause_locally(seconds)
        self._published_until = max(self._published_until, time.monotonic() + seconds)
        await self._publish_pause(seconds, drain=drain)

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
            self._pause_locally(wait)
            until = time.monotonic() + wait
            if wait >= MIN_SHARED_HINT_PAUSE_S and until > self._published_until + MIN_SHARED_HINT_PAUSE_S:
                self._published_until = until
                self._spawn(self._publish_pause(wait, drain=False))

    async def aclose(self) -> None:
        """Finish background work and release the store's connection."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def __aenter__(self) -> RateBudget:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @abstractmethod
    async def _grant(self, want_requests: int, need_tokens: float, want_tokens: float) -> Grant:
        """Take credit from the store's bucket, or say how long until there is some."""

    @abstractmethod
    async def _publish_pause(self, seconds: float, *, drain: bool) -> None:
        """Record a pause in the store so that every other user of the account waits too."""

    def _has_credit(self, tokens: int, limits: Limits) -> bool:
        if limits.request_rate is not None and self._request_credit < 1.0:
            return False
        return limits.token_rate is None or self._token_credit >= tokens

    def _wants(self, tokens: int, limits: Limits, *, lease: bool = True) -> tuple[int, float, float]:
        need_tokens = max(0.0, tokens - self._token_credit) if limits.token_rate is not None else 0.0
        want_requests = 1
        want_tokens = need_tokens
        if self.lease_s > 0 and lease:
            if limits.request_rate is not None:
                want_requests = max(1, math.ceil(limits.request_rate * self.lease_s))
            if limits.token_rate is not None:
                want_tokens = need_tokens + limits.token_rate * self.lease_s
        return want_requests, need_tokens, want_tokens

    def _pause_locally(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._next_grant_at = 0.0
        # Credit leased before the pause must not be spent during it.
        self._request_credit = min(self._request_credit, 0.0)
        self._token_credit = min(self._token_credit, 0.0)

    def _spawn(self, coroutine: object) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        except RuntimeError:  # no loop (called from sync code): the local pause is enough
            coroutine.close()  # type: ignore[attr-defined]
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)
