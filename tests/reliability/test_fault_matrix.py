"""Fault matrix through ``pipeline.analyze_chunk``: each provider misbehaviour alone, then all of them mixed.

Real PostgreSQL, real HTTP to the local endpoint; the run must complete, the invariant must hold and
each failure must carry the reason code of what went wrong. Small timeouts and attempt bounds keep it
fast (``harness.fast_llm``).
"""

from __future__ import annotations

import pytest

from reviewlens.simulator import FAULT_KINDS
from tests.reliability import harness as h

# kind -> (rate, K, reasons a failure of this kind may end with, reasons that must appear)
# Content faults (200 replies) are re-asked once, so a review fails only when both answers are bad.
ALONE = {
    "rate_limit_burst": (0.6, 1, {"rate_limited"}, {"rate_limited"}),
    "server_error": (0.6, 1, {"provider_error"}, {"provider_error"}),
    "hang": (0.5, 1, {"timeout"}, {"timeout"}),
    "reset": (0.6, 1, {"provider_error"}, {"provider_error"}),
    "not_json": (0.6, 1, {"invalid_json"}, {"invalid_json"}),
    "wrong_schema": (0.7, 1, {"schema_violation"}, {"schema_violation"}),
    "wrapped_json": (0.8, 1, set(), set()),  # repaired, never a failure
    "drop_id": (0.6, 5, {"missing_in_reply"}, {"missing_in_reply"}),
    "extra_id": (0.8, 5, set(), set()),  # the invented item is ignored
    "dup_id": (0.6, 5, {"missing_in_reply"}, {"missing_in_reply"}),
    "stream_cut": (1.0, 1, set(), set()),  # applies to streamed requests only; the pipeline never streams
}
MIXED_KINDS = sorted(FAULT_KINDS)


def test_the_matrix_covers_every_fault_kind_of_the_endpoint():
    assert set(ALONE) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", sorted(ALONE))
def test_each_fault_alone_ends_every_review_analyzed_or_failed_with_its_reason(wh, endpoint, key, kind):
    dsn, schema = wh
    rate, k, allowed, required = ALONE[kind]
    sim = endpoint({kind: rate, "hang_s": 1.5, "retry_after_s": 0.02})
    h.seed(dsn, schema, h.sample(40))
    cfg = h.make_config(sim.base_url, key, schema, reviews_per_request=k, chunk_size=20, timeout_s=0.4)
    run = h.run_day(dsn, cfg)

    book = h.assert_invariant(dsn, schema, cfg.version)
    log = sim.requests()
    injected = sum(1 for e in log if e["fault"] == kind)
    assert injected > 0 or kind == "stream_cut", f"{kind} was never injected"
    assert set(book.reasons()) <= allowed, book.reasons()
    assert required <= set(book.reasons()), f"{kind}: expected {required} among {book.reasons()}"
    assert len(book.analyzed) >= 10, f"{kind} at {rate}: only {len(book.analyzed)} of 40 analyzed"
    # Failures say what happened: attempts, the last HTTP status for HTTP errors, the reply for bad content.
    for row in book.failed.values():
        assert row["attempts"] >= 1 and row["detail"]
        if row["reason"] in ("rate_limited",):
            assert row["http_status"] == 429
        if row["reason"] == "provider_error" and kind == "server_error":
            assert row["http_status"] in (500, 502, 503)
        if row["reason"] in ("invalid_json", "schema_violation"):
            assert row["raw_reply"], "a rejected reply is kept for inspection"
            assert row["completion_tokens"] > 0, "an invalid reply was paid for and must be counted"
    if kind == "wrapped_json":
        assert any("repaired_json" in row["flags"] for row in book.analyzed.values())
    assert sum(r.analyzed + r.failed for r in run.reports) == 40


@pytest.mark.parametrize("k", [1, 5])
def test_all_faults_mixed_at_twenty_percent_of_requests(wh, endpoint, key, k):
    dsn, schema = wh
    per_kind = 0.2 / len(MIXED_KINDS)  # independent draws: about 20 % of requests get some fault
    sim = endpoint({**dict.fromkeys(MIXED_KINDS, per_kind), "hang_s": 1.5, "retry_after_s": 0.02})
    h.seed(dsn, schema, h.sample(150))
    cfg = h.make_config(sim.base_url, key, schema, reviews_per_request=k, chunk_size=50, timeout_s=0.4)
    h.run_day(dsn, cfg)

    book = h.assert_invariant(dsn, schema, cfg.version)
    log = sim.requests()
    faulty = [e for e in log if e["fault"]]
    assert 0.08 <= len(faulty) / len(log) <= 0.35, f"{len(faulty)} faults in {len(log)} requests"
    assert len({e["fault"] for e in faulty}) >= 5
    # Three attempts and a re-ask absorb a 20 % fault rate: nearly everything ends analyzed.
    assert len(book.analyzed) >= 140, book.reasons()
