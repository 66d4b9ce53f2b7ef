"""Packed replies (K > 1) that omit, invent or repeat ids: caught, never written, retried singly."""

from __future__ import annotations

import pytest

from tests.reliability import harness as h


@pytest.mark.parametrize("kind", ["drop_id", "extra_id", "dup_id"])
def test_a_packed_reply_with_wrong_ids_is_reconciled(wh, endpoint, key, kind):
    dsn, schema = wh
    sim = endpoint({kind: 0.5})
    h.seed(dsn, schema, h.sample(40))
    cfg = h.make_config(sim.base_url, key, schema, reviews_per_request=5)
    h.run_day(dsn, cfg)
    # The invariant also proves that no invented id was ever written (rows == source ids exactly).
    book = h.assert_invariant(dsn, schema, cfg.version)
    log = sim.requests()
    assert any(e["fault"] == kind for e in log)
    singles = [e for e in log if len(e["review_ids"]) == 1]
    if kind == "extra_id":
        assert not book.failed and not singles, "an invented item costs nothing and is ignored"
    else:
        # Each omitted or ambiguous review went out again alone, and says so.
        retried = [r for r in book.analyzed.values() if "retried_singly" in r["flags"]]
        assert singles and retried
        assert set(book.reasons()) <= {"missing_in_reply"}


def test_a_review_the_model_always_omits_ends_failed_with_missing_in_reply(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint({"drop_id": 1.0, "match_text": "always omitted"})
    reviews = h.sample(9)
    reviews.insert(4, h.review("r-omit", "This blender is always omitted by the model, sadly."))
    h.seed(dsn, schema, reviews)
    cfg = h.make_config(sim.base_url, key, schema, reviews_per_request=5)
    h.run_day(dsn, cfg)
    book = h.assert_invariant(dsn, schema, cfg.version)
    assert set(book.failed) == {"r-omit"}
    row = book.failed["r-omit"]
    assert row["reason"] == "missing_in_reply" and row["raw_reply"]
    assert len(book.analyzed) == 9
