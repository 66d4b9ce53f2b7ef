"""Warehouse writes are idempotent and keep exactly one row per review and analysis version."""

from __future__ import annotations

from datetime import date

import pytest

from reviewlens.aggregate import compute_daily_summary
from reviewlens.models import ReviewOutcome
from reviewlens.warehouse import (
    ensure_schema,
    finished_review_ids,
    outcome_counts,
    write_outcomes,
)

DAY = date(2026, 11, 1)


@pytest.fixture
def wh(pg_conn, pg_schema):
    ensure_schema(pg_conn, pg_schema)
    return pg_conn, pg_schema


def ok(rid: str, sentiment: str = "positive", **kw) -> ReviewOutcome:
    base = dict(
        categories=["quality"], summary="Good.", prompt_tokens=50, completion_tokens=20, latency_ms=100.0
    )
    base.update(kw)
    return ReviewOutcome(review_id=rid, ok=True, sentiment=sentiment, **base)


def bad(rid: str, reason: str = "timeout", **kw) -> ReviewOutcome:
    return ReviewOutcome(review_id=rid, ok=False, reason=reason, detail="x", attempts=3, **kw)


def write(wh, outcomes, version="v1"):
    conn, schema = wh
    write_outcomes(conn, outcomes, day=DAY, version=version, model="m", schema=schema)


def count(wh, table: str) -> int:
    conn, schema = wh
    return conn.execute(f'SELECT count(*) FROM "{schema}".{table}').fetchone()[0]


def test_ensure_schema_is_safe_to_run_twice(wh):
    conn, schema = wh
    ensure_schema(conn, schema)
    assert count(wh, "review_analysis") == 0


def test_writing_the_same_results_twice_replaces_them(wh):
    write(wh, [ok("a"), ok("b")])
    write(wh, [ok("a", "negative"), ok("b")])
    assert count(wh, "review_analysis") == 2
    conn, schema = wh
    assert (
        conn.execute(f"SELECT sentiment FROM \"{schema}\".review_analysis WHERE review_id='a'").fetchone()[0]
        == "negative"
    )


def test_a_success_replaces_an_earlier_failure(wh):
    write(wh, [bad("a")])
    write(wh, [ok("a")])
    assert count(wh, "review_analysis") == 1
    assert count(wh, "review_analysis_failures") == 0


def test_tokens_paid_by_failed_attempts_stay_in_the_day_after_a_success(wh):
    write(wh, [bad("a", prompt_tokens=30, completion_tokens=7)])
    write(wh, [ok("a")])
    conn, schema = wh
    row = conn.execute(
        f'SELECT prompt_tokens, completion_tokens, attempts FROM "{schema}".review_analysis'
    ).fetchone()
    assert row == (50 + 30, 20 + 7, 1 + 3)


def test_a_failure_never_overwrites_a_result(wh):
    write(wh, [ok("a")])
    write(wh, [bad("a")])
    assert count(wh, "review_analysis") == 1
    assert count(wh, "review_analysis_failures") == 0


def test_repeated_failures_accumulate_attempts_and_paid_tokens_in_one_row(wh):
    write(wh, [bad("a", prompt_tokens=10)])
    write(wh, [bad("a", reason="rate_limited", prompt_tokens=10)])
    conn, schema = wh
    row = conn.execute(
        f'SELECT reason, attempts, runs, prompt_tokens FROM "{schema}".review_analysis_failures'
    ).fetchall()
    assert row == [("rate_limited", 6, 2, 20)]


def test_nul_and_huge_raw_replies_are_stored_safely(wh):
    write(wh, [bad("a", reason="invalid_json", raw_reply="x\x00y" + "z" * 10_000)])
    conn, schema = wh
    raw = conn.execute(f'SELECT raw_reply FROM "{schema}".review_analysis_failures').fetchone()[0]
    assert "\x00" not in raw and len(raw) < 2100 and raw.endswith("[truncated]")


def test_a_new_analysis_version_keeps_the_old_rows(wh):
    write(wh, [ok("a")], version="v1")
    write(wh, [ok("a", "negative")], version="v2")
    assert count(wh, "review_analysis") == 2


def test_finished_means_analyzed_or_failed_for_a_final_reason(wh):
    write(wh, [ok("a"), bad("b", reason="empty_text"), bad("c", reason="timeout")])
    conn, schema = wh
    assert finished_review_ids(conn, ["a", "b", "c", "d"], version="v1", schema=schema) == {"a", "b"}
    assert finished_review_ids(conn, ["a"], version="v2", schema=schema) == set()


def test_outcome_counts_show_reviews_without_rows(wh):
    write(wh, [ok("a"), bad("b")])
    conn, schema = wh
    assert outcome_counts(conn, ["a", "b", "c"], version="v1", schema=schema) == {"a": 1, "b": 1, "c": 0}


def test_daily_summary_counts_sentiments_categories_failures_tokens_and_latency(wh):
    write(
        wh,
        [
            ok("a", categories=["quality", "price"], latency_ms=100.0),
            ok("b", "negative", categories=["price"], latency_ms=300.0),
            ok("c", "neutral", categories=[], latency_ms=200.0),
            bad("d", reason="invalid_json", prompt_tokens=40, completion_tokens=5),
        ],
    )
    conn, schema = wh
    row = compute_daily_summary(conn, day=DAY, version="v1", model="m", reviews_total=4, schema=schema)
    assert (row["reviews_analyzed"], row["reviews_failed"]) == (3, 1)
    assert (row["positive"], row["neutral"], row["negative"]) == (1, 1, 1)
    assert row["category_counts"] == {"price": 2, "quality": 1}
    assert row["failure_reasons"] == {"invalid_json": 1}
    assert row["prompt_tokens"] == 3 * 50 + 40 and row["completion_tokens"] == 3 * 20 + 5
    assert row["latency_p50_ms"] == 200.0
    compute_daily_summary(conn, day=DAY, version="v1", model="m", reviews_total=4, schema=schema)
    assert count(wh, "review_daily_summary") == 1
