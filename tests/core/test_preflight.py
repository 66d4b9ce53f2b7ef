"""The preflight proof against the local endpoint over loopback HTTP, and the seed it hands the chunks."""

from __future__ import annotations

import asyncio
import json

import pytest

from reviewlens.analyzer import EndpointState, analyze_reviews
from reviewlens.client import ChatClient
from reviewlens.config import LLMSettings, Secret
from reviewlens.errors import ConfigurationError
from reviewlens.models import Review, ReviewOutcome
from reviewlens.preflight import PROOF_ALIAS, check_and_prove_endpoint, prove_endpoint
from reviewlens.pricing import load_prices
from reviewlens.retry import RetryPolicy
from reviewlens.simulator import SimulatorConfig
from reviewlens.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy(None)
PRICES = load_prices(None)
REVIEWS = [Review(f"rev-{i:02d}", f"Review {i}: the kettle boils fast but the lid broke.") for i in range(12)]


def settings_for(base_url: str, key: str, **changes: object) -> LLMSettings:
    return LLMSettings(base_url=base_url, api_key=Secret(key), max_attempts=2).with_(**changes)


def prove(llm: LLMSettings) -> EndpointState:
    async def go() -> EndpointState:
        policy = RetryPolicy.from_settings(llm, initial_backoff_s=0.01, max_backoff_s=0.02)
        async with ChatClient(llm, policy=policy) as client:
            return await prove_endpoint(client, llm, TAXONOMY)

    return asyncio.run(go())


def seeded_run(llm: LLMSettings, seed: dict, reviews: list[Review] = REVIEWS) -> list[ReviewOutcome]:
    """A chunk as ``pipeline.analyze_chunk`` runs it with check_setup's XCom."""

    async def go() -> list[ReviewOutcome]:
        state = EndpointState.from_dict(seed, llm)
        async with ChatClient(llm, key_verified=state.checked) as client:
            return await analyze_reviews(
                reviews, client, settings=llm, taxonomy=TAXONOMY, prices=PRICES, endpoint_state=state
            )

    return asyncio.run(go())


def overlapping_with_first(log: list[dict]) -> int:
    """Requests that reached the endpoint before the first one was answered (the first included)."""
    first = min(log, key=lambda e: e["t_start"])
    return sum(1 for e in log if e["t_start"] < first["t_end"])


def test_the_proof_costs_one_request_and_learns_key_and_json_schema(simulator, sim_api_key) -> None:
    llm = settings_for(simulator.base_url, sim_api_key)
    state = prove(llm)
    assert state.checked and state.response_format == "json_schema"
    (entry,) = simulator.requests()
    assert entry["status"] == 200 and entry["review_ids"] == [PROOF_ALIAS]
    facts = json.loads(json.dumps(state.as_dict()))  # plain JSON, as XCom carries it
    assert facts["key_verified"] is True and facts["response_format"] == "json_schema"
    assert facts["model"] == llm.model and facts["base_url"] == simulator.base_url and facts["checked_at"]
    assert sim_api_key not in json.dumps(facts)


def test_a_seeded_chunk_sends_its_first_requests_together(simulator_factory, sim_api_key) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, latency_median_ms=300))
    llm = settings_for(sim.base_url, sim_api_key, reviews_per_request=1)
    seed = prove(llm).as_dict()

    sim.reset()
    outcomes = seeded_run(llm, seed)
    assert all(o.ok for o in outcomes)
    assert overlapping_with_first(sim.requests()) == len(REVIEWS)  # the whole window at once

    sim.reset()
    outcomes = seeded_run(llm, {})  # no seed (an old XCom): the first request goes alone, as before
    assert all(o.ok for o in outcomes)
    assert overlapping_with_first(sim.requests()) == 1


def test_a_proof_on_an_endpoint_without_response_format_seeds_prompt_only_json(
    simulator_factory, sim_api_key
) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, supports_response_format=False))
    llm = settings_for(sim.base_url, sim_api_key, reviews_per_request=3)
    state = prove(llm)
    assert state.checked and state.response_format == "none"
    assert [e["status"] for e in sim.requests()] == [400, 200]  # json_schema refused once, then proven

    sim.reset()
    outcomes = seeded_run(llm, state.as_dict())
    assert all(o.ok for o in outcomes)
    # The endpoint answers 400 to any request carrying response_format: the chunk never sent one.
    assert [e["status"] for e in sim.requests()] == [200] * 4


def test_a_wrong_key_fails_the_proof_naming_the_connection_and_the_fix(simulator, sim_api_key) -> None:
    wrong = "sk-wrong-but-plausible-42"
    with pytest.raises(ConfigurationError) as caught:
        prove(settings_for(simulator.base_url, wrong))
    message = str(caught.value)
    for words in ("reviewlens_llm", "rejected the API key", "password", "no review was sent"):
        assert words in message
    assert wrong not in message and sim_api_key not in message
    assert [e["status"] for e in simulator.requests()] == [401]


def test_an_unknown_model_fails_the_proof_with_what_to_set(simulator, sim_api_key) -> None:
    with pytest.raises(ConfigurationError, match=r"404.*'gpt-imaginary'.*extra 'model'"):
        prove(settings_for(simulator.base_url, sim_api_key, model="gpt-imaginary"))


def test_an_unreachable_endpoint_fails_the_proof() -> None:
    with pytest.raises(ConfigurationError, match=r"127\.0\.0\.1:9.*no answer.*host and port"):
        prove(settings_for("http://127.0.0.1:9/v1", "sk-any"))


def test_an_explicit_response_format_the_endpoint_refuses_fails_the_proof(
    simulator_factory, sim_api_key
) -> None:
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, supports_response_format=False))
    with pytest.raises(ConfigurationError, match=r"response_format='json_schema'.*'auto'.*'none'"):
        prove(settings_for(sim.base_url, sim_api_key, response_format="json_schema"))


def test_a_provider_failing_for_now_leaves_the_chunks_to_prove_it_themselves(simulator, sim_api_key) -> None:
    simulator.configure(faults={"server_error": 1.0})
    state = prove(settings_for(simulator.base_url, sim_api_key))
    assert not state.checked and state.as_dict()["key_verified"] is False
    assert not EndpointState.from_dict(state.as_dict()).checked


def test_check_and_prove_finds_a_wrong_key_for_free_and_returns_the_seed(simulator, sim_api_key) -> None:
    with pytest.raises(ConfigurationError, match="reviewlens_llm"):
        check_and_prove_endpoint(settings_for(simulator.base_url, "sk-wrong-1"), TAXONOMY)
    assert simulator.requests() == []  # GET /models caught it: no chat completion was sent

    info = check_and_prove_endpoint(settings_for(simulator.base_url, sim_api_key), TAXONOMY)
    assert info["models_listed"] == 1
    assert info["endpoint"]["key_verified"] is True and info["endpoint"]["response_format"] == "json_schema"
    assert len(simulator.requests()) == 1


def test_a_seed_is_trusted_only_for_its_own_endpoint_and_model() -> None:
    llm = LLMSettings(base_url="http://a.example/v1/", model="m1")
    seed = EndpointState.proven(llm, "none").as_dict()
    back = EndpointState.from_dict(seed, llm)
    assert (back.checked, back.response_format, back.as_dict()) == (True, "none", seed)
    for other in (llm.with_(base_url="http://b.example/v1"), llm.with_(model="m2")):
        assert EndpointState.from_dict(seed, other) == EndpointState()
    explicit = EndpointState.from_dict(seed, llm.with_(response_format="json_object"))
    assert explicit.checked and explicit.response_format is None  # the explicit setting wins in the run
    for junk in (None, {}, [], {"key_verified": "yes", "response_format": "xml"}):
        assert EndpointState.from_dict(junk, llm) == EndpointState()  # type: ignore[arg-type]
