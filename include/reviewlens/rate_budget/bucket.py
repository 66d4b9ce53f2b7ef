"""The schedule arithmetic every budget backend shares (in memory, in Postgres, in Redis).

The account's capacity is a *timeline*: at ``safety × limit / 60`` per second, every request owns
a slot of ``1 / request_rate`` seconds and every token ``1 / token_rate`` seconds of it. The store
keeps, per account, the first free instant of each timeline (``request_tat``/``token_tat``, the
"theoretical arrival time" of GCRA) and a ``paused_until``. A **lease** reserves the next stretch
of each timeline for one process in one atomic step, and never fails: the stretch may lie in the
future, and the process then sends its requests at their slot times by its own clock.

Why a schedule and not a token bucket: a bucket can only hand out what has already refilled, so
at the limit a shared bucket holds a crumb and every lease is a round trip per request (or a
polling loop); what refills while nobody polls is lost above the bucket's capacity. A schedule can
hand out the next 0.2 s of the account at once to whoever asks, so a process takes a few leases per
second whatever the rate, and nothing is lost to a late poll.

The guarantee: slots never overlap across processes, and a process uses a slot at the earliest at
its time and at the latest ``burst_s`` after it (an older slot is dropped, see ``base.py``). Any
window of W seconds therefore carries at most ``(W + burst_s) × rate + 1`` requests: with the
defaults, 0.985 × 10.1 / 10 = 99.5 % of the limit in any 10 s window. Pure functions on plain
numbers, mirrored in SQL (``postgres.py``) and Lua (``redis.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Aim this fraction of the provider's limit so that its own bucket never overflows.
DEFAULT_SAFETY = 0.985
# How far behind its slot a request may still go (event-loop lag, a lease's round trip), and how far
# in the past a new lease may start. Any 10 s window may then see safety x (10 + burst_s) / 10 of
# the limit: 99.5 % with 0.985 and 0.1 s (bench/throughput.py measures the peak 10 s window).
DEFAULT_BURST_S = 0.1


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
        """The most requests that may go at once (a burst): ``burst_s`` worth, at least one."""
        rate = self.request_rate
        return math.inf if rate is None else max(1.0, rate * self.burst_s)

    @property
    def token_capacity(self) -> float:
        rate = self.token_rate
        return math.inf if rate is None else max(1.0, rate * self.burst_s)


@dataclass(frozen=True)
class ScheduleRow:
    """Stored state of one account; instants are seconds on the store's clock (0 = never used)."""

    request_tat: float = 0.0  # first instant of the request timeline nobody holds yet
    token_tat: float = 0.0
    paused_until: float = 0.0


@dataclass(frozen=True)
class Lease:
    """Stretches of the timelines handed to one process; instants on the store's clock.

    ``request_span_s`` seconds of the request timeline from ``request_start`` (0 = none asked),
    likewise for tokens. ``now`` is the store's clock when the lease was taken, so that the caller
    can map the instants onto its own clock.
    """

    now: float
    request_start: float
    request_span_s: float
    token_start: float
    token_span_s: float
    paused_until: float


def take_lease(
    row: ScheduleRow, now: float, burst_s: float, *, request_span_s: float, token_span_s: float
) -> tuple[ScheduleRow, Lease]:
    """Reserve the next ``request_span_s``/``token_span_s`` seconds of each timeline.

    A stretch starts where the last one ended, but never before the end of a pause and never more
    than ``burst_s`` in the past (an idle account's past capacity is gone, bar one burst).
    """
    earliest = max(now - burst_s, row.paused_until)
    request_start = token_start = earliest
    request_tat, token_tat = row.request_tat, row.token_tat
    if request_span_s > 0:
        request_start = max(request_tat, earliest)
        request_tat = request_start + request_span_s
    if token_span_s > 0:
        token_start = max(token_tat, earliest)
        token_tat = token_start + token_span_s
    new_row = replace(row, request_tat=request_tat, token_tat=token_tat)
    return new_row, Lease(now, request_start, request_span_s, token_start, token_span_s, row.paused_until)


def pause(row: ScheduleRow, now: float, seconds: float) -> ScheduleRow:
    """Hand out nothing before ``now + seconds`` (a lease then starts at the pause's end)."""
    return replace(row, paused_until=max(row.paused_until, now + max(0.0, seconds)))


def give_back(
    row: ScheduleRow, *, request_from: float, request_end: float, token_from: float, token_end: float
) -> ScheduleRow:
    """Return the unused tail of a process's last stretches, if nobody has leased after them."""
    request_tat, token_tat = row.request_tat, row.token_tat
    if request_from < request_end and math.isclose(request_tat, request_end, abs_tol=1e-6):
        request_tat = request_from
    if token_from < token_end and math.isclose(token_tat, token_end, abs_tol=1e-6):
        token_tat = token_from
    return replace(row, request_tat=request_tat, token_tat=token_tat)
