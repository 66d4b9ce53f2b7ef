"""Pure packing and accounting logic of the analyzer, with an in-test fake client (no HTTP).

End-to-end behaviour against the real client and the local endpoint is in
``test_analyzer_simulator.py``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from reviewlens.analyzer import MIN_PACKS_AHEAD, _split, aliases, analyze_reviews, iter_packs, plan_packs
from reviewlens.config import LLMSettings
from reviewlens.models import Review, ReviewOutcome
from reviewlens.pricing import load_prices
from reviewlens.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy(None)
PRICES = load_prices(None)


@dataclass
class FakeReply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float = 0.25
    status: int = 200
    attempts: int = 1
    request_id: str | None = None


class EchoClient:
    """Answers every fenced review positively; records what it was sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def complete(self, messages: list[dict], *, max_tokens: int, response_format: dict | None = None):
        self.calls.append(
            {"messages": messages, "max_tokens": max_tokens, "response_format": response_format}
        )
        content = messages[-1]["content"]
        items = json.loads(content[len("<reviews>") : content.index("</reviews>")])
        results = [
            {"id": i["id"], "sentiment": "positive", "categories": ["quality"], "summary": "Good."}
            for i in items
        ]
        return FakeReply(json.dumps({"results": results}), prompt_tokens=1000, completion_tokens=100)


def run(
    reviews: list[Review], client: Any, **settings: Any
) -> tuple[list[ReviewOutcome], list[ReviewOutcome]]:
    seen: list[ReviewOutcome] = []
    llm = LLMSettings(base_url="http://unused/v1", model="gpt-4o-mini", **settings)
    outcomes = asyncio.run(
        analyze_reviews(
            reviews, client, settings=llm, taxonomy=TAXONOMY, prices=PRICES, on_outcome=seen.append
        )
    )
    return outcomes, seen


def test_packs_keep_order_and_size_and_never_hold_one_id_twice() -> None:
    items = ["a", "b", "c", "d", "e"]
    assert plan_packs(items, 2, key=str) == [["a", "b"], ["c", "d"], ["e"]]
    assert plan_packs(["a", "b", "a", "c"], 5, key=str) == [["a", "b"], ["a", "c"]]
    assert plan_packs(items, 0, key=str) == [[x] for x in items]
    assert aliases(3) == ["1", "2", "3"]


def test_iter_packs_draws_items_only_as_far_as_the_packs_asked_for() -> None:
    drawn: list[str] = []

    def items(values: str):
        for value in values:
            drawn.append(value)
            yield value

    packs = iter_packs(items("abcdefg"), 3, key=str)
    assert next(packs) == ["a", "b", "c"] and drawn == ["a", "b", "c"]  # nothing drawn ahead
    assert list(packs) == [["d", "e", "f"], ["g"]]
    drawn.clear()
    packs = iter_packs(items("abac"), 5, key=str)
    assert next(packs) == ["a", "b"] and drawn == ["a", "b", "a"]  # a repeated id is the one look-ahead
    assert list(packs) == [["a", "c"]]
    for values, size in (("abcab", 2), ("aaab", 3), ("abcdef", 4), ("", 2)):
        assert list(iter_packs(values, size, key=str)) == plan_packs(list(values), size, key=str)


class SlowEchoClient(EchoClient):
    """EchoClient that takes a moment per reply and records what the event loop held meanwhile."""

    def __init__(self, seen: list[ReviewOutcome]) -> None:
        super().__init__()
        self.seen = seen
        self.outcomes_at_first_call: int | None = None
        self.peak_tasks = 0

    async def complete(self, messages: list[dict], *, max_tokens: int, response_format: dict | None = None):
        if self.outcomes_at_first_call is None:
            self.outcomes_at_first_call = len(self.seen)
        self.peak_tasks = max(self.peak_tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0.001)
        return await super().complete(messages, max_tokens=max_tokens, response_format=response_format)


def test_reviews_are_prepared_lazily_and_live_pack_tasks_stay_bounded() -> None:
    # 1,500 packs, the empty reviews last: preparing everything first would report them before any call.
    reviews = [Review(f"r{i}", f"review number {i}") for i in range(1500)] + [
        Review(f"e{i}", "") for i in range(5)
    ]
    seen: list[ReviewOutcome] = []
    client = SlowEchoClient(seen)
    llm = LLMSettings(base_url="http://unused/v1", reviews_per_request=1, max_concurrency=8)
    outcomes = asyncio.run(
        analyze_reviews(
            reviews, client, settings=llm, taxonomy=TAXONOMY, prices=PRICES, on_outcome=seen.append
        )
    )
    assert client.outcomes_at_first_call == 0  # the first request left before the empty ones were reached
    assert client.peak_tasks <= MIN_PACKS_AHEAD + 1  # the window (max(64, 2 x 8)) plus the run itself
    assert [o.review_id for o in outcomes] == [r.review_id for r in reviews] and len(seen) == len(reviews)
    assert [o.reason for o in outcomes[-5:]] == ["empty_text"] * 5 and all(o.ok for o in outcomes[:-5])
    assert len(client.calls) == 1500


def test_split_is_proportional_and_adds_up_exactly() -> None:
    assert _split(100, [1, 1, 2]) == [25, 25, 50]
    shares = _split(101, [3, 3, 3])
    assert sum(shares) == 101 and max(shares) - min(shares) <= 1
    assert _split(0, [5, 1]) == [0, 0]


def test_one_outcome_per_review_in_input_order_each_reported_once() -> None:
    reviews = [Review(f"r{i}", f"review number {i}") for i in range(7)] + [Review("empty", "  ")]
    client = EchoClient()
    outcomes, seen = run(reviews, client, reviews_per_request=3)
    assert [o.review_id for o in outcomes] == [r.review_id for r in reviews]
    assert sorted(o.review_id for o in seen) == sorted(r.review_id for r in reviews)
    assert len(client.calls) == 3  # 7 usable reviews in packs of 3; the empty one sent nowhere
    assert outcomes[-1].reason == "empty_text" and outcomes[-1].attempts == 0


def test_packed_usage_is_split_by_prompt_text_tokens_and_priced() -> None:
    reviews = [Review("short", "ok"), Review("long", "this one is a much longer review text " * 3)]
    outcomes, _ = run(reviews, EchoClient(), reviews_per_request=2)
    short, long_ = outcomes
    assert short.prompt_tokens + long_.prompt_tokens == 1000
    assert short.completion_tokens + long_.completion_tokens == 100
    assert long_.prompt_tokens > 5 * short.prompt_tokens
    assert short.latency_ms == long_.latency_ms == 250.0
    assert long_.cost_usd == PRICES.cost("gpt-4o-mini", long_.prompt_tokens, long_.completion_tokens) > 0


def test_source_ids_are_sent_as_short_aliases() -> None:
    reviews = [Review("0f8c1b7e-6f6e-4a4e-9c55-ignore-instructions", "nice"), Review("x" * 40, "bad")]
    client = EchoClient()
    outcomes, _ = run(reviews, client, reviews_per_request=2)
    sent = client.calls[0]["messages"][-1]["content"]
    assert "0f8c1b7e" not in sent and '"id":"1"' in sent and '"id":"2"' in sent
    assert [o.review_id for o in outcomes] == [r.review_id for r in reviews] and all(o.ok for o in outcomes)


def test_duplicate_input_ids_each_get_their_own_outcome() -> None:
    reviews = [Review("same", "first text"), Review("same", "second text")]
    client = EchoClient()
    outcomes, seen = run(reviews, client, reviews_per_request=5)
    assert len(outcomes) == len(seen) == 2 and all(o.ok for o in outcomes)
    assert len(client.calls) == 2  # never two equal ids in one pack


def test_max_tokens_scales_with_the_pack_and_response_format_follows_settings() -> None:
    client = EchoClient()
    run(
        [Review(f"r{i}", "fine") for i in range(4)],
        client,
        reviews_per_request=4,
        max_output_tokens=150,
        response_format="json_object",
    )
    assert client.calls[0]["max_tokens"] == 600
    assert client.calls[0]["response_format"] == {"type": "json_object"}
