"""The reply parser on well-formed and really malformed model output."""

from __future__ import annotations

import json

import pytest

from reviewlens.parsing import (
    FLAG_DROPPED_CATEGORIES,
    FLAG_SUMMARY_TRUNCATED,
    ReviewAnalysis,
    parse_reply,
)
from reviewlens.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy(None)


def item(rid: str | None = "1", **over: object) -> dict:
    base = {
        "sentiment": "positive",
        "categories": ["quality"],
        "summary": "Works well.",
        "confidence": 0.9,
        "language": "en",
    }
    if rid is not None:
        base["id"] = rid
    return {**base, **over}


def reply(*items: dict) -> str:
    return json.dumps({"results": list(items)})


def test_well_formed_packed_reply_maps_every_id() -> None:
    parsed = parse_reply(reply(item("1"), item("2", sentiment="negative")), ["1", "2"], TAXONOMY)
    assert not parsed.repaired and not parsed.missing_ids and not parsed.unexpected_ids
    assert parsed.items["1"].analysis.sentiment == "positive"
    assert parsed.items["2"].analysis.sentiment == "negative"
    assert parsed.items["1"].analysis.confidence == 0.9 and parsed.items["1"].analysis.language == "en"


@pytest.mark.parametrize(
    "content",
    [
        '```json\n{"results": [{"id": "1", "sentiment": "neutral", "categories": [],'
        ' "summary": "Okay."}]}\n```',
        'Sure! Here is the analysis:\n{"results": [{"id": "1", "sentiment": "neutral", "categories": [],'
        ' "summary": "Okay."}]}\nHope this helps!',
        '{"results": [{"id": "1", "sentiment": "neutral", "categories": [], "summary": "Okay.",},],}',
        "{'results': [{'id': '1', 'sentiment': 'neutral', 'categories': [], 'summary': 'Okay.'}]}",
    ],
    ids=["code-fence", "prose-around", "trailing-commas", "single-quotes"],
)
def test_repairable_replies_are_repaired_and_flagged(content: str) -> None:
    parsed = parse_reply(content, ["1"], TAXONOMY)
    assert parsed.repaired
    assert parsed.items["1"].analysis is not None
    assert parsed.items["1"].analysis.summary == "Okay."


@pytest.mark.parametrize("content", ["", "I'm sorry, I can't help with that.", "Sentiment: positive", None])
def test_prose_or_empty_reply_is_invalid_json_for_every_id(content: str | None) -> None:
    parsed = parse_reply(content, ["1", "2"], TAXONOMY)
    for rid in ("1", "2"):
        assert parsed.items[rid].reason == "invalid_json"
        assert parsed.items[rid].analysis is None


def test_bare_array_is_accepted() -> None:
    parsed = parse_reply(json.dumps([item("1"), item("2")]), ["1", "2"], TAXONOMY)
    assert parsed.items["1"].ok and parsed.items["2"].ok


def test_bare_single_object_without_id_is_accepted_for_one_review() -> None:
    parsed = parse_reply(json.dumps(item(None)), ["r9"], TAXONOMY)
    assert parsed.items["r9"].ok


def test_bare_object_for_several_reviews_is_a_schema_violation() -> None:
    parsed = parse_reply(json.dumps(item(None)), ["1", "2"], TAXONOMY)
    assert {r.reason for r in parsed.items.values()} == {"schema_violation"}


def test_json_encoded_as_a_string_is_unwrapped() -> None:
    parsed = parse_reply(json.dumps(reply(item("1"))), ["1"], TAXONOMY)
    assert parsed.items["1"].ok


def test_wrong_top_level_key_is_a_schema_violation() -> None:
    parsed = parse_reply(json.dumps({"analysis": [item("1"), item("2")]}), ["1", "2"], TAXONOMY)
    assert parsed.items["1"].reason == "schema_violation"
    assert "results" in (parsed.items["1"].message or "")


def test_one_bad_item_never_fails_the_others() -> None:
    bad = item("2", sentiment="very good", categories={"a": 1}, summary=None)
    parsed = parse_reply(reply(item("1"), bad, item("3")), ["1", "2", "3"], TAXONOMY)
    assert parsed.items["1"].ok and parsed.items["3"].ok
    failed = parsed.items["2"]
    assert failed.reason == "schema_violation"
    assert "sentiment" in failed.message and "categories" in failed.message
    assert json.loads(failed.raw)["id"] == "2"  # the item's own JSON, for the re-ask


@pytest.mark.parametrize(
    "bad",
    [
        {"sentiment": 1},
        {"sentiment": "mixed"},
        {"summary": ""},
        {"summary": "   "},
        {"summary": ["a", "b"]},
        {"categories": [1, 2]},
        {"categories": 3},
    ],
)
def test_wrong_types_and_values_are_schema_violations(bad: dict) -> None:
    parsed = parse_reply(reply(item("1", **bad)), ["1"], TAXONOMY)
    assert parsed.items["1"].reason == "schema_violation", parsed.items["1"]


def test_missing_summary_is_a_schema_violation() -> None:
    broken = item("1")
    del broken["summary"]
    assert parse_reply(reply(broken), ["1"], TAXONOMY).items["1"].reason == "schema_violation"


def test_sentiment_and_categories_are_normalised() -> None:
    raw = item(
        "1", sentiment="  Negative ", categories=["Customer Service", "PRICE", "price", "customer-service"]
    )
    analysis = parse_reply(reply(raw), ["1"], TAXONOMY).items["1"].analysis
    assert analysis.sentiment == "negative"
    assert analysis.categories == ["customer_service", "price"]
    assert analysis.flags == ()


def test_category_string_counts_as_a_comma_separated_list_and_null_as_none() -> None:
    analysis = parse_reply(reply(item("1", categories="quality, Price")), ["1"], TAXONOMY).items["1"].analysis
    assert analysis.categories == ["quality", "price"]
    assert (
        parse_reply(reply(item("1", categories=None)), ["1"], TAXONOMY).items["1"].analysis.categories == []
    )


def test_unknown_categories_are_dropped_and_counted_not_errors() -> None:
    raw = item("1", categories=["quality", "vibes", "astrology"])
    analysis = parse_reply(reply(raw), ["1"], TAXONOMY).items["1"].analysis
    assert analysis.categories == ["quality"]
    assert analysis.dropped_categories == 2
    assert FLAG_DROPPED_CATEGORIES in analysis.flags


def test_eighty_word_summary_is_cut_to_fifty_words_and_flagged() -> None:
    summary = " ".join(f"w{i}" for i in range(80))
    analysis = parse_reply(reply(item("1", summary=summary)), ["1"], TAXONOMY).items["1"].analysis
    assert analysis.summary.split() == [f"w{i}" for i in range(50)]
    assert FLAG_SUMMARY_TRUNCATED in analysis.flags


def test_unusable_optional_fields_become_none() -> None:
    raw = item("1", confidence="high", language=42)
    analysis = parse_reply(reply(raw), ["1"], TAXONOMY).items["1"].analysis
    assert analysis.confidence is None and analysis.language is None
    assert (
        parse_reply(reply(item("1", confidence=93)), ["1"], TAXONOMY).items["1"].analysis.confidence is None
    )
    assert (
        parse_reply(reply(item("1", confidence="0.4")), ["1"], TAXONOMY).items["1"].analysis.confidence == 0.4
    )


def test_model_cannot_set_our_flags() -> None:
    raw = item("1", flags=["admin"], dropped_categories=99)
    analysis = parse_reply(reply(raw), ["1"], TAXONOMY).items["1"].analysis
    assert analysis.flags == () and analysis.dropped_categories == 0


def test_missing_duplicate_and_unexpected_ids_are_reported() -> None:
    content = reply(item("1"), item("3"), item("3", sentiment="negative"), item("extra-1"))
    parsed = parse_reply(content, ["1", "2", "3"], TAXONOMY)
    assert parsed.items["1"].ok
    assert parsed.missing_ids == ["2"] and parsed.items["2"].reason == "missing_in_reply"
    assert parsed.duplicate_ids == ["3"] and parsed.items["3"].reason == "missing_in_reply"
    assert parsed.unexpected_ids == ["extra-1"]


def test_an_id_repeated_with_the_identical_answer_is_accepted() -> None:
    parsed = parse_reply(reply(item("1"), item("2"), item("2")), ["1", "2"], TAXONOMY)
    assert parsed.items["2"].ok and parsed.duplicate_ids == []


def test_numeric_ids_in_the_reply_match_string_ids() -> None:
    content = json.dumps({"results": [{**item(None), "id": 1}, {**item(None), "id": 2}]})
    parsed = parse_reply(content, ["1", "2"], TAXONOMY)
    assert parsed.items["1"].ok and parsed.items["2"].ok


def test_items_without_id_cannot_be_attributed_in_a_pack() -> None:
    parsed = parse_reply(json.dumps({"results": [item(None), item(None)]}), ["1", "2"], TAXONOMY)
    assert parsed.missing_ids == ["1", "2"]


def test_truncated_reply_salvages_the_complete_items() -> None:
    full = reply(item("1"), item("2"))
    parsed = parse_reply(full[: full.index('"id": "2"') + 5], ["1", "2"], TAXONOMY)
    assert parsed.repaired and parsed.items["1"].ok
    assert not parsed.items["2"].ok


def test_review_analysis_can_be_validated_without_a_taxonomy() -> None:
    analysis = ReviewAnalysis.model_validate(item(None, categories=["anything"]))
    assert analysis.categories == ["anything"]
