"""``LocalBudget``: the rate budget of one process, for a single chunk or a single-worker run."""

from __future__ import annotations

import time

from reviewlens.rate_budget.base import RateBudget
from reviewlens.rate_budget.bucket import (
    DEFAULT_BURST_S,
    DEFAULT_SAFETY,
    BucketRow,
    Grant,
    Limits,
    grant,
    pause,
)


class LocalBudget(RateBudget):
    """Continuous-refill token buckets in memory; exact grants, no leasing."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        safety: float = DEFAULT_SAFETY,
        burst_s: float = DEFAULT_BURST_S,
    ) -> None:
        super().__init__(Limits(requests_per_minute, tokens_per_minute, safety, burst_s))
        self._row = BucketRow()

    async def _grant(self, want_requests: int, need_tokens: float, want_tokens: float) -> Grant:
        self._row, granted = grant(
            self._row,
            time.monotonic(),
            self.limits,
            want_requests=want_requests,
            need_tokens=need_tokens,
            want_tokens=want_tokens,
        )
        return granted

    async def _publish_pause(self, seconds: float, *, drain: bool) -> None:
        self._row = pause(self._row, time.monotonic(), seconds, drain=drain)
