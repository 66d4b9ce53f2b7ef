"""ChatClient against the real simulator on loopback: replies, error mapping, retries, the auth latch."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from reviewlens.client import ChatClient, ChatReply
from reviewlens.config import LLMSettings, Secret
from reviewlens.errors import (
    AuthenticationFailed,
    BadRequest,
    ProviderUnavailable,
    RateLimited,
    RequestTimeout,
)
from reviewlens.retry import RetryPolicy
from reviewlens.simulator import FaultConfig, SimulatorConfig, SimulatorHandle

MESSAGES = [{"role": "user", "content": "Great kettle, but the lid broke after a week."}]
FAST_RETRY = {"initial_backoff_s": 0.01, "max_backoff_s": 0.02}


def settings_for(sim: SimulatorHandle, key: str, **changes: object) -> LLMSettings:
    return LLMSettings(base_url=sim.base_url, api_key=Secret(key)).with_(**changes)


def client_for(settings: LLMSettings, **kwargs: object) -> ChatClient:
    return ChatClient(settings, policy=RetryPolicy.from_settings(settings, **FAST_RETRY), **kwargs)  # type: ignore[arg-type]


def chat_requests(sim: SimulatorHandle) -> list[dict]:
    return [r for r in sim.requests() if r.get("model") is not None or r.get("status")]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_complete_models_and_stream_on_both_transports(
    simulator: SimulatorHandle, sim_api_key: str, transport: str
) -> None:
    async def run() -> None:
        async with client_for(settings_for(simulator, sim_api_key), transport=transport) as client:
            assert "reviewlens-sim-1" in await client.list_models()
            replies = await asyncio.gather(*(client.complete(MESSAGES, max_tokens=100) for _ in range(20)))
            probe = await client.probe_stream(MESSAGES)
            return client, replies, probe

    client, replies, probe = asyncio.run(run())
    reply: ChatReply = replies[0]
    assert reply.status == 200 and reply.attempts == 1 and reply.finish_reason == "stop"
    assert '"sentiment"' in reply.content and reply.completion_tokens > 0 and reply.request_id
    assert probe.content and probe.completion_tokens > 0 and probe.chunks > 1
    assert 0 <= probe.ttft_s <= probe.latency_s
    stats = client.stats
    assert stats.requests == 22 and stats.by_status[200] == 22 and stats.retries == 0
    assert stats.completion_tokens == sum(r.completion_tokens for r in replies)


def test_wrong_key_stops_the_client_after_exactly_one_request(
    simulator: SimulatorHandle, sim_api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-that-must-not-leak"

    async def run() -> list[BaseException | ChatReply]:
        async with client_for(settings_for(simulator, wrong)) as client:
            outcomes = await asyncio.gather(
                *(client.complete(MESSAGES) for _ in range(50)), return_exceptions=True
            )
            with pytest.raises(AuthenticationFailed):
                await client.list_models()  # later calls fail at once, without sending
            assert wrong not in repr(client)
            return outcomes

    caplog.set_level(logging.DEBUG)
    outcomes = asyncio.run(run())
    assert all(isinstance(o, AuthenticationFailed) for o in outcomes)
    assert len(simulator.requests()) == 1
    assert {o.status for o in outcomes} == {401}  # type: ignore[union-attr]
    for outcome in outcomes:
        assert wrong not in str(outcome) and wrong not in repr(outcome)
    assert wrong not in caplog.text


def test_a_preflight_verified_key_sends_at_once_and_a_rejection_still_latches(
    simulator_factory, sim_api_key: str
) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, latency_median_ms=200))

    def first_overlap() -> int:
        log = sim.requests()
        first = min(log, key=lambda e: e["t_start"])
        return sum(1 for e in log if e["t_start"] < first["t_end"])

    async def burst(key: str, verified: bool) -> list[BaseException | ChatReply]:
        settings = settings_for(sim, key, max_concurrency=8)
        async with client_for(settings, key_verified=verified) as client:
            outcomes = await asyncio.gather(
                *(client.complete(MESSAGES) for _ in range(30)), return_exceptions=True
            )
            if not verified or key == sim_api_key:
                return outcomes
            with pytest.raises(AuthenticationFailed):
                await client.list_models()  # latched: fails at once, without sending
            return outcomes

    assert all(isinstance(o, ChatReply) for o in asyncio.run(burst(sim_api_key, verified=True)))
    assert first_overlap() == 8  # a full window at once, no lone first request
    sim.reset()
    asyncio.run(burst(sim_api_key, verified=False))
    assert first_overlap() == 1

    sim.reset()  # a key that the preflight proved and that was revoked since
    outcomes = asyncio.run(burst("sk-revoked-after-the-proof", verified=True))
    assert all(isinstance(o, AuthenticationFailed) for o in outcomes)
    assert 1 <= len(sim.requests()) <= 8  # what was on the wire when the first 401 came back, no more


def test_server_errors_exhaust_the_attempts_and_raise_provider_unavailable(
    simulator: SimulatorHandle, sim_api_key: str
) -> None:
    simulator.configure(faults=FaultConfig.of(server_error=1.0).to_dict())

    async def run() -> None:
        async with client_for(settings_for(simulator, sim_api_key, max_attempts=3)) as client:
            await client.complete(MESSAGES)

    with pytest.raises(ProviderUnavailable) as caught:
        asyncio.run(run())
    assert caught.value.attempts == 3 and caught.value.status in (500, 502, 503)
    assert len(simulator.requests()) == 3


def test_transient_failures_are_retried_and_attempts_recorded(
    simulator: SimulatorHandle, sim_api_key: str
) -> None:
    simulator.configure(faults=FaultConfig.of(server_error=1.0, reset=0.0, first_n_requests=2).to_dict())

    async def run() -> ChatReply:
        async with client_for(settings_for(simulator, sim_api_key)) as client:
            return await client.complete(MESSAGES)

    reply = asyncio.run(run())
    assert reply.attempts == 3 and reply.status == 200
    assert [r["status"] for r in simulator.requests()][-1] == 200


def test_persistent_429_raises_rate_limited(simulator: SimulatorHandle, sim_api_key: str) -> None:
    simulator.configure(faults=FaultConfig.of(rate_limit_burst=1.0, retry_after_s=0.02).to_dict())

    async def run() -> None:
        async with client_for(settings_for(simulator, sim_api_key, max_attempts=4)) as client:
            await client.complete(MESSAGES)

    with pytest.raises(RateLimited) as caught:
        asyncio.run(run())
    assert caught.value.attempts == 4 and caught.value.status == 429


def test_connection_resets_raise_provider_unavailable(simulator: SimulatorHandle, sim_api_key: str) -> None:
    simulator.configure(faults=FaultConfig.of(reset=1.0).to_dict())

    async def run() -> None:
        async with client_for(settings_for(simulator, sim_api_key, max_attempts=2)) as client:
            await client.complete(MESSAGES)

    with pytest.raises(ProviderUnavailable) as caught:
        asyncio.run(run())
    assert caught.value.attempts == 2


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_hanging_endpoint_raises_request_timeout(
    simulator: SimulatorHandle, sim_api_key: str, transport: str
) -> None:
    simulator.configure(faults=FaultConfig.of(hang=1.0, hang_s=5.0).to_dict())
    settings = settings_for(simulator, sim_api_key, timeout_s=0.2, max_attempts=2)

    async def run() -> None:
        async with client_for(settings, transport=transport) as client:
            await client.complete(MESSAGES)

    with pytest.raises(RequestTimeout) as caught:
        asyncio.run(run())
    assert caught.value.attempts == 2


def test_review_deadline_stops_retries_early(simulator: SimulatorHandle, sim_api_key: str) -> None:
    simulator.configure(faults=FaultConfig.of(server_error=1.0).to_dict())
    settings = settings_for(simulator, sim_api_key, max_attempts=50)

    async def run() -> None:
        policy = RetryPolicy.from_settings(settings, initial_backoff_s=0.1, max_backoff_s=0.1)
        async with ChatClient(settings, policy=policy) as client:
            await client.complete(MESSAGES, deadline=time.monotonic() + 0.3)

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as caught:
        asyncio.run(run())
    assert time.monotonic() - started < 1.0
    assert 1 <= caught.value.attempts < 50


def test_unknown_model_is_a_bad_request_with_the_provider_message(
    simulator: SimulatorHandle, sim_api_key: str
) -> None:
    async def run() -> None:
        async with client_for(settings_for(simulator, sim_api_key, model="no-such-model")) as client:
            await client.complete(MESSAGES)

    with pytest.raises(BadRequest) as caught:
        asyncio.run(run())
    assert caught.value.attempts == 1 and caught.value.status in (400, 404)
    assert "no-such-model" in str(caught.value)
    assert len(simulator.requests()) <= 1


def test_stream_cut_before_done_is_retried(simulator_factory, sim_api_key: str) -> None:
    sim = simulator_factory(
        SimulatorConfig(api_key=sim_api_key, faults=FaultConfig.of(stream_cut=1.0, first_n_requests=1))
    )

    async def run():
        async with client_for(settings_for(sim, sim_api_key)) as client:
            return await client.probe_stream(MESSAGES)

    probe = asyncio.run(run())
    assert probe.attempts == 2 and probe.finish_reason == "stop"


def test_reservations_follow_what_replies_cost_as_a_share_of_max_tokens(
    simulator: SimulatorHandle, sim_api_key: str
) -> None:
    settings = LLMSettings(base_url=simulator.base_url, api_key=Secret(sim_api_key))

    async def run() -> tuple[int, int, float | None]:
        async with ChatClient(settings, expected_output_ratio=0.1) as seeded, ChatClient(settings) as fresh:
            assert fresh.expected_output_tokens(400) == 400  # nothing known yet: reserve the ceiling
            seeded_reserve = seeded.expected_output_tokens(400)  # the preflight's share, for any size
            reply = await fresh.complete(
                [{"role": "user", "content": "Great kettle, fast boil."}], max_tokens=400
            )
            return seeded_reserve, reply.completion_tokens, fresh.expected_output_ratio

    seeded_reserve, completion, ratio = asyncio.run(run())
    assert seeded_reserve == 41
    assert ratio == completion / 400
