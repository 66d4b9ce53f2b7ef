"""The in-process rate budget: schedule arithmetic, pacing under the limit, shared pauses, header limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from reviewlens.client import ChatClient
from reviewlens.config import LLMSettings, Secret
from reviewlens.rate_budget import LocalBudget, PostgresBudget, make_budget
from reviewlens.rate_budget.bucket import ScheduleRow, give_back, pause, take_lease
from reviewlens.simulator import FaultConfig, SimulatorConfig, SimulatorHandle

MESSAGES = [{"role": "user", "content": "Sturdy, quiet and cheap. Would buy again."}]


def max_in_window_excess(times: list[float], rate_per_s: float, capacity: float) -> float:
    """Largest (count in a window) - (capacity + rate * window length) over all windows of ``times``."""
    times = sorted(times)
    worst = float("-inf")
    for i in range(len(times)):
        for j in range(i, len(times)):
            worst = max(worst, (j - i + 1) - (capacity + rate_per_s * (times[j] - times[i])))
    return worst


def test_leases_are_consecutive_stretches_that_never_overlap() -> None:
    row = ScheduleRow()
    row, first = take_lease(row, 100.0, 0.1, request_span_s=0.2, token_span_s=0.5)
    # An idle account: the stretch starts at most one burst in the past.
    assert first.request_start == pytest.approx(99.9) and first.token_start == pytest.approx(99.9)
    row, second = take_lease(row, 100.0, 0.1, request_span_s=0.2, token_span_s=0.0)
    assert second.request_start == pytest.approx(100.1)  # right after the first: in the future
    assert row.token_tat == pytest.approx(100.4)  # no tokens asked: the token timeline did not move
    row, third = take_lease(row, 105.0, 0.1, request_span_s=0.2, token_span_s=0.0)
    assert third.request_start == pytest.approx(104.9)  # idle capacity is gone, bar one burst


def test_a_pause_moves_every_later_lease_past_its_end() -> None:
    row = pause(ScheduleRow(request_tat=10.0), 10.0, 3.0)
    assert pause(row, 10.0, 1.0).paused_until == 13.0  # a shorter pause never shortens one
    row, during = take_lease(row, 11.0, 0.1, request_span_s=0.5, token_span_s=0.0)
    assert during.request_start == pytest.approx(13.0) and during.paused_until == 13.0


def test_give_back_only_when_nobody_leased_after() -> None:
    row, _ = take_lease(ScheduleRow(), 50.0, 0.0, request_span_s=1.0, token_span_s=0.0)
    mine = {"request_from": 50.4, "request_end": 51.0, "token_from": 0.0, "token_end": 0.0}
    assert give_back(row, **mine).request_tat == pytest.approx(50.4)
    row, _ = take_lease(row, 50.1, 0.0, request_span_s=1.0, token_span_s=0.0)  # someone else leased
    assert give_back(row, **mine).request_tat == pytest.approx(52.0)


def test_local_budget_paces_requests_and_tokens_under_the_limit() -> None:
    budget = LocalBudget(requests_per_minute=3000, tokens_per_minute=60_000)  # 50 req/s, 1000 tok/s

    async def run() -> list[float]:
        stamps = []
        for _ in range(40):
            reservation = await budget.acquire(20)
            stamps.append(time.monotonic())
            budget.settle(reservation, 20)
        return stamps

    stamps = asyncio.run(run())
    limits = budget.limits
    assert max_in_window_excess(stamps, limits.request_rate, limits.request_capacity) <= 1.0
    assert stamps[-1] - stamps[0] >= (40 - limits.request_capacity) / limits.request_rate - 0.05


def test_settle_gives_back_unused_tokens() -> None:
    budget = LocalBudget(tokens_per_minute=6000)  # ~98 tokens/s, capacity ~49

    async def run() -> float:
        reservation = await budget.acquire(40)
        budget.settle(reservation, 5)  # 35 come back: the next 30-token request needs no wait
        started = time.monotonic()
        await budget.acquire(30)
        return time.monotonic() - started

    assert asyncio.run(run()) < 0.05


def test_pause_holds_every_waiting_caller() -> None:
    budget = LocalBudget()  # even an unlimited budget honours a provider's pause

    async def run() -> list[float]:
        await budget.pause_for(0.3)
        started = time.monotonic()
        await asyncio.gather(*(budget.acquire(10) for _ in range(5)))
        return [time.monotonic() - started]

    assert asyncio.run(run())[0] >= 0.28


def test_client_never_exceeds_the_simulated_account_limits(simulator_factory, sim_api_key: str) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, rpm=1800, tpm=90_000))
    settings = LLMSettings(
        base_url=sim.base_url, api_key=Secret(sim_api_key), requests_per_minute=1800, tokens_per_minute=90_000
    )

    async def run() -> None:
        async with ChatClient(settings) as client:
            await asyncio.gather(*(client.complete(MESSAGES, max_tokens=60) for _ in range(60)))

    asyncio.run(run())
    log = sim.requests()
    assert len(log) == 60 and all(r["status"] == 200 for r in log)  # not a single 429
    rate, capacity = 1800 / 60, 1800 / 60  # the provider's bucket: one second's worth
    assert max_in_window_excess([r["t_start"] for r in log], rate, capacity) <= 0


def test_limits_are_adopted_from_the_provider_headers(simulator_factory, sim_api_key: str) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, rpm=2400))
    settings = LLMSettings(base_url=sim.base_url, api_key=Secret(sim_api_key))  # limits unknown
    budget = LocalBudget()

    async def run() -> None:
        async with ChatClient(settings, budget=budget) as client:
            await asyncio.gather(*(client.complete(MESSAGES, max_tokens=60) for _ in range(50)))

    asyncio.run(run())
    assert budget.limits.requests_per_minute == 2400
    assert all(r["status"] == 200 for r in sim.requests())


def test_a_429_with_retry_after_pauses_every_caller(simulator: SimulatorHandle, sim_api_key: str) -> None:
    settings = LLMSettings(base_url=simulator.base_url, api_key=Secret(sim_api_key), max_concurrency=2)

    async def run() -> None:
        async with ChatClient(settings) as client:
            await client.complete(MESSAGES)  # the key is proven; now the provider says "full" once
            simulator.configure(faults=FaultConfig.of(rate_limit_burst=1.0, first_n_requests=1).to_dict())
            replies = await asyncio.gather(*(client.complete(MESSAGES) for _ in range(8)))
            assert all(r.status == 200 for r in replies)
            assert client.stats.rate_limited == 1

    asyncio.run(run())
    log = simulator.requests()
    limited = [r for r in log if r["status"] == 429]
    assert len(limited) == 1
    paused_at = limited[0]["t_end"]
    later = [r["t_start"] for r in log if r["t_start"] > paused_at]
    # The fault's Retry-After is 1 s: whoever had not been sent yet waited for it (at most the
    # one request already on the wire when the 429 arrived went earlier).
    early = [t for t in later if t < paused_at + 0.95]
    assert len(early) <= 1 and len(later) >= 8


def test_make_budget_picks_the_backend() -> None:
    settings = LLMSettings(base_url="http://127.0.0.1:1/v1", requests_per_minute=100)
    assert isinstance(make_budget(settings), LocalBudget)
    shared = make_budget(settings, dsn="postgresql://postgres@127.0.0.1:5432/postgres")
    assert isinstance(shared, PostgresBudget) and "postgres@" not in repr(shared)
    assert shared.limits.requests_per_minute == 100
