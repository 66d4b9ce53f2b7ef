"""Adaptive concurrency: a sliding window that halves on 429, yields to latency, and climbs back."""

from __future__ import annotations

import asyncio
import math
import random
import time

from reviewlens.client import ChatClient
from reviewlens.concurrency import AdaptiveLimiter
from reviewlens.config import LLMSettings, Secret
from reviewlens.retry import RetryPolicy
from reviewlens.simulator import FaultConfig, SimulatorConfig

MESSAGES = [{"role": "user", "content": "Comfortable shoes, true to size."}]


def test_limiter_halves_once_per_round_trip_on_overload() -> None:
    limiter = AdaptiveLimiter(64, initial=32)
    before = time.monotonic()
    limiter.on_overload(time.monotonic())
    assert limiter.limit == 16
    limiter.on_overload(before)  # a reply to a request sent before the decrease: old news
    assert limiter.limit == 16
    limiter.on_overload(time.monotonic())
    assert limiter.limit == 8 and limiter.decreases == 2


def test_limiter_grows_only_while_it_is_the_constraint() -> None:
    async def run() -> AdaptiveLimiter:
        limiter = AdaptiveLimiter(64, initial=4, slow_start=False)
        for _ in range(50):  # idle capacity: successes while far below the limit do not grow it
            limiter.on_success(time.monotonic(), 0.01)
        assert limiter.limit == 4
        for _ in range(40):  # saturated (every slot busy): about +1 per window of successes
            while limiter.in_flight < limiter.limit:
                await limiter.acquire()
            limiter.on_success(time.monotonic(), 0.01)
        return limiter

    limiter = asyncio.run(run())
    assert 8 <= limiter.limit <= 11


def test_limiter_slow_start_doubles_per_window_until_the_first_decrease() -> None:
    async def saturate(limiter: AdaptiveLimiter, successes: int) -> None:
        for _ in range(successes):
            while limiter.in_flight < limiter.limit:
                await limiter.acquire()
            limiter.on_success(time.monotonic(), 0.01)
            limiter.release()

    async def run() -> None:
        limiter = AdaptiveLimiter(256, initial=4)
        await saturate(limiter, 28)  # slow start: +1 per success
        assert limiter.limit == 32
        limiter.on_overload(time.monotonic())
        assert limiter.limit == 16
        await saturate(limiter, 32)  # after a decrease: about +1 per window
        assert 17 <= limiter.limit <= 18

    asyncio.run(run())


def test_limiter_ignores_latency_until_it_has_enough_samples() -> None:
    limiter = AdaptiveLimiter(64, initial=32)
    limiter.on_success(time.monotonic(), 0.05)  # a lone fast first reply
    for _ in range(20):
        limiter.on_success(time.monotonic(), 1.0)
    assert limiter.decreases == 0


def test_limiter_is_not_fooled_by_spread_latency_or_a_fast_first_wave() -> None:
    """LLM-like latency (lognormal, median 0.8 s, p95 2.5 s) with no congestion: never a decrease."""
    rng = random.Random(7)
    limiter = AdaptiveLimiter(256, initial=64)
    first_wave_sent = time.monotonic()
    for latency in sorted(rng.lognormvariate(math.log(0.8), 0.69) for _ in range(64)):
        limiter.on_success(first_wave_sent, latency)  # the first wave comes back fastest first
    for _ in range(5000):
        limiter.on_success(time.monotonic(), rng.lognormvariate(math.log(0.8), 0.69))
    assert limiter.decreases == 0 and limiter.lowest_limit == 64


def test_limiter_backs_off_when_latency_climbs_far_above_baseline() -> None:
    limiter = AdaptiveLimiter(64, initial=32)
    for _ in range(30):
        limiter.on_success(time.monotonic(), 0.02)
    for _ in range(30):
        limiter.on_success(time.monotonic(), 0.5)
    assert limiter.limit < 32 and limiter.decreases >= 1


def test_sliding_window_never_exceeds_the_limit_and_starts_waiters_at_once() -> None:
    async def run() -> int:
        limiter = AdaptiveLimiter(3, initial=3)
        peak = 0

        async def work(delay: float) -> None:
            nonlocal peak
            async with limiter.slot():
                peak = max(peak, limiter.in_flight)
                await asyncio.sleep(delay)

        started = time.monotonic()
        # One slow task must not hold back the others (no batch barrier).
        await asyncio.gather(work(0.3), *(work(0.02) for _ in range(12)))
        assert time.monotonic() - started < 0.35
        return peak

    assert asyncio.run(run()) == 3


def test_client_backs_off_on_429_and_climbs_back(simulator_factory, sim_api_key: str) -> None:
    sim = simulator_factory(
        SimulatorConfig(
            api_key=sim_api_key,
            latency_median_ms=5,
            latency_p95_ms=10,
            faults=FaultConfig.of(rate_limit_burst=1.0, first_n_requests=3, retry_after_s=0.05),
        )
    )
    settings = LLMSettings(base_url=sim.base_url, api_key=Secret(sim_api_key), max_concurrency=64)

    async def run() -> AdaptiveLimiter:
        policy = RetryPolicy.from_settings(settings, initial_backoff_s=0.01, max_backoff_s=0.05)
        async with ChatClient(settings, policy=policy) as client:
            replies = await asyncio.gather(*(client.complete(MESSAGES, max_tokens=60) for _ in range(600)))
            assert all(r.status == 200 for r in replies)
            return client.limiter

    limiter = asyncio.run(run())
    assert limiter.decreases >= 1 and limiter.lowest_limit <= 16
    assert limiter.limit > limiter.lowest_limit
    assert limiter.peak_in_flight <= 64
