"""The cluster-wide budgets: several processes (here: threads with their own loops) share one account."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from reviewlens.client import ChatClient
from reviewlens.config import LLMSettings, Secret
from reviewlens.rate_budget import Limits, PostgresBudget, RateBudget
from reviewlens.simulator import SimulatorConfig

from .test_rate_budget import MESSAGES, max_in_window_excess

RPM = 1800


def run_in_threads(jobs: list[Callable[[], object]]) -> None:
    """Run each coroutine factory on its own thread and event loop, like separate worker processes."""
    errors: list[BaseException] = []

    def target(job: Callable[[], object]) -> None:
        try:
            asyncio.run(job())  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


def test_two_postgres_budgets_share_one_account_within_its_limit(
    simulator_factory, sim_api_key: str, pg_dsn: str, pg_schema: str
) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, rpm=RPM))
    settings = LLMSettings(
        base_url=sim.base_url, api_key=Secret(sim_api_key), requests_per_minute=RPM, budget_key="acct-1"
    )

    def chunk() -> Callable[[], object]:
        async def run() -> None:
            budget = PostgresBudget(pg_dsn, settings.account_key, RPM, schema=pg_schema)
            async with budget, ChatClient(settings, budget=budget) as client:
                await asyncio.gather(*(client.complete(MESSAGES, max_tokens=60) for _ in range(40)))

        return run

    run_in_threads([chunk(), chunk()])
    log = sim.requests()
    assert len(log) == 80 and all(r["status"] == 200 for r in log)  # together, never a 429
    assert max_in_window_excess([r["t_start"] for r in log], RPM / 60, RPM / 60) <= 0
    with psycopg.connect(pg_dsn) as conn:
        (leases,) = conn.execute(
            f'SELECT leases FROM "{pg_schema}".reviewlens_rate_budget WHERE account_key = %s',
            (settings.account_key,),
        ).fetchone()
    # Each lease is 0.2 s of the schedule (5 requests at 1,800 RPM): not a round trip per request.
    assert leases <= 80 // 3


def test_a_pause_written_by_one_process_holds_the_others(pg_dsn: str, pg_schema: str) -> None:
    first = PostgresBudget(pg_dsn, "acct-pause", 6000, schema=pg_schema)
    second = PostgresBudget(pg_dsn, "acct-pause", 6000, schema=pg_schema)

    async def run() -> float:
        async with first, second:
            await first.acquire(1)
            await first.pause_for(0.5)  # e.g. first got a 429 with Retry-After: 0.5
            started = time.monotonic()
            await second.acquire(1)
            return time.monotonic() - started

    assert asyncio.run(run()) >= 0.4


def test_unreachable_database_is_a_configuration_error() -> None:
    from reviewlens.errors import ConfigurationError

    budget = PostgresBudget("postgresql://postgres:s3cret@127.0.0.1:1/none", "acct", 60)

    async def run() -> None:
        await budget.acquire(1)

    with pytest.raises(ConfigurationError) as caught:
        asyncio.run(run())
    assert "s3cret" not in str(caught.value)


def _redis_url() -> str:
    url = "redis://127.0.0.1:6379/15"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except Exception:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return url


def test_two_redis_budgets_share_one_account_within_its_limit() -> None:
    from reviewlens.rate_budget.redis import RedisBudget

    url = _redis_url()
    key = f"test-{time.time_ns()}"
    stamps: list[float] = []

    def chunk() -> Callable[[], object]:
        async def run() -> None:
            budget: RateBudget = RedisBudget(url, key, 3000)  # 49 requests/s between both
            async with budget:
                for _ in range(30):
                    await budget.acquire(1)
                    stamps.append(time.monotonic())

        return run

    run_in_threads([chunk(), chunk()])
    limits = Limits(requests_per_minute=3000)
    assert len(stamps) == 60
    # Leases may be spent up to their time-to-live after they were granted.
    slack = limits.request_rate * 0.5 + 1
    assert max_in_window_excess(stamps, limits.request_rate, limits.request_capacity) <= slack
    shortest = (60 - limits.request_capacity - slack) / limits.request_rate
    assert max(stamps) - min(stamps) >= shortest


def test_slots_left_behind_by_a_stalled_loop_do_not_become_a_burst(pg_dsn: str, pg_schema: str) -> None:
    budget = PostgresBudget(pg_dsn, "acct-stall", 6000, schema=pg_schema)  # 98.5 requests/s
    stamps: list[float] = []

    async def take() -> None:
        await budget.acquire(1)
        stamps.append(time.monotonic())

    async def run() -> None:
        async with budget:
            await asyncio.gather(*(take() for _ in range(5)))
            stamps.clear()
            time.sleep(0.5)  # the event loop is blocked: the rest of the leased stretch is in the past
            await asyncio.gather(*(take() for _ in range(60)))

    asyncio.run(run())
    limits = budget.limits
    assert len(stamps) == 60
    # At most one burst (burst_s worth) goes at once; the stale slots were dropped, not sent late.
    assert max_in_window_excess(stamps, limits.request_rate, limits.request_capacity) <= 1.0


def test_a_closed_budget_gives_its_unused_slots_back(pg_dsn: str, pg_schema: str) -> None:
    first = PostgresBudget(pg_dsn, "acct-give-back", 600, schema=pg_schema, lease_s=2.0)  # 9.85/s
    second = PostgresBudget(pg_dsn, "acct-give-back", 600, schema=pg_schema, lease_s=2.0)

    async def run() -> float:
        async with first:
            waiters = [asyncio.ensure_future(first.acquire(1)) for _ in range(19)]
            await asyncio.sleep(0.05)  # the first lease is taken for all 19 waiting callers (~1.9 s)
            for waiter in waiters[3:]:
                waiter.cancel()  # ...but 16 of them give up
            await asyncio.gather(*waiters, return_exceptions=True)
        started = time.monotonic()
        async with second:
            await second.acquire(1)
        return time.monotonic() - started

    # Without the give-back the second process would wait ~1.6 s behind slots nobody uses.
    assert asyncio.run(run()) < 0.5
