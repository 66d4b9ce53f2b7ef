"""``LocalBudget``: the rate budget of one process, for a single chunk or a single-worker run."""

from __future__ import annotations

import time

from reviewlens.rate_budget.base import RateBudget
from reviewlens.rate_budget.bucket import (
    DEFAULT_BURST_S,
    DEFAULT_SAFETY,
    Lease,
    Limits,
    ScheduleRow,
    give_back,
    pause,
    take_lease,
)


class LocalBudget(RateBudget):
    """The account's schedule in memory, on this process's clock; one slot per lease."""

    local_clock = True

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        safety: float = DEFAULT_SAFETY,
        burst_s: float = DEFAULT_BURST_S,
    ) -> None:
        super().__init__(Limits(requests_per_minute, tokens_per_minute, safety, burst_s))
        self._row = ScheduleRow()

    async def _take(self, request_span_s: float, token_span_s: float) -> Lease | None:
        self._row, lease = take_lease(
            self._row,
            time.monotonic(),
            self.limits.burst_s,
            request_span_s=request_span_s,
            token_span_s=token_span_s,
        )
        return lease

    async def _publish_pause(self, seconds: float) -> None:
        self._row = pause(self._row, time.monotonic(), seconds)

    async def _give_back(
        self, request_from: float, request_end: float, token_from: float, token_end: float
    ) -> None:
        self._row = give_back(
            self._row,
            request_from=request_from,
            request_end=request_end,
            token_from=token_from,
            token_end=token_end,
        )
