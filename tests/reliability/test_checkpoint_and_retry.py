"""Checkpointing while a chunk runs, skip-finished on retry, failure rows retried by a later run, 401."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import sql

from reviewlens import pipeline
from reviewlens.errors import AuthenticationFailed
from tests.reliability import harness as h


def count(dsn: str, schema: str, table: str = "review_analysis") -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        return conn.execute(query).fetchone()[0]


def test_analyze_chunk_writes_results_while_it_runs(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint(latency_median_ms=100, latency_p95_ms=130)
    h.seed(dsn, schema, h.sample(60))
    cfg = h.make_config(sim.base_url, key, schema, chunk_size=100, max_concurrency=2)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                seen.append(count(dsn, schema))
            except psycopg.errors.UndefinedTable:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        (report,) = h.run_day(dsn, cfg).reports
    finally:
        done.set()
        watcher.join()
    partial = sorted({n for n in seen if 0 < n < 60})
    # ~20 requests/s over ~3 s: the warehouse shows many intermediate counts, not one write at the end.
    assert len(partial) >= 5, f"counts seen while running: {sorted(set(seen))}"
    assert report.analyzed == 60
    h.assert_invariant(dsn, schema, cfg.version)


def test_a_retried_chunk_requests_only_the_reviews_without_a_result(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint()
    h.seed(dsn, schema, h.sample(30))
    cfg = h.make_config(sim.base_url, key, schema)
    h.run_day(dsn, cfg)
    # Simulate a chunk that died after checkpointing two thirds: drop the last ten results.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "DELETE FROM {}.review_analysis WHERE review_id IN "
                "(SELECT review_id FROM {}.review_analysis ORDER BY review_id DESC LIMIT 10)"
            ).format(sql.Identifier(schema), sql.Identifier(schema))
        )
    before = len(sim.requests())
    (report,) = h.run_day(dsn, cfg).reports
    assert (report.skipped_already_done, report.requests, report.analyzed) == (20, 10, 10)
    assert len(sim.requests()) - before == 10
    h.assert_invariant(dsn, schema, cfg.version)
    # A third run has nothing left to do and sends nothing.
    (report,) = h.run_day(dsn, cfg).reports
    assert (report.skipped_already_done, report.requests) == (30, 0)
    assert len(sim.requests()) - before == 10


def test_a_later_run_retries_retryable_failures_and_a_success_replaces_the_row(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint({"server_error": 1.0})
    h.seed(dsn, schema, [*h.sample(12), h.review("z-empty", "   \n\t "), h.review("z-ctrl", "\x07\x1b\x0b")])
    cfg = h.make_config(sim.base_url, key, schema, max_attempts=2)
    h.run_day(dsn, cfg)
    first = h.assert_invariant(dsn, schema, cfg.version)
    assert first.reasons() == {"provider_error": 12, "empty_text": 2}
    for rid, row in first.failed.items():
        if row["reason"] == "provider_error":
            assert (row["attempts"], row["runs"]) == (2, 1) and row["http_status"] in (500, 502, 503), row
        else:  # the review itself is unusable: no request was made for it
            assert (row["attempts"], row["http_status"]) == (0, None), rid

    # A second run while the provider is still down: same rows, attempts and runs add up.
    h.run_day(dsn, cfg)
    second = h.assert_invariant(dsn, schema, cfg.version)
    assert second.reasons() == first.reasons()
    assert {r["runs"] for r in second.failed.values() if r["reason"] == "provider_error"} == {2}
    assert {r["attempts"] for r in second.failed.values() if r["reason"] == "provider_error"} == {4}
    assert all(second.failed[rid]["runs"] == 1 for rid in ("z-empty", "z-ctrl")), "final failures re-sent"

    # The provider recovers: every retryable failure becomes a result; final ones stay, unsent.
    sim.configure(faults={})
    sim.reset()
    h.run_day(dsn, cfg)
    third = h.assert_invariant(dsn, schema, cfg.version)
    assert len(third.analyzed) == 12 and third.reasons() == {"empty_text": 2}
    assert len(sim.requests()) == 12


def test_a_rejected_key_records_auth_failed_for_the_chunk_and_a_fixed_key_retries_them(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint()
    h.seed(dsn, schema, h.sample(25))
    wrong = h.make_config(sim.base_url, "sk-wrong-key-000000", schema, chunk_size=100)
    with pytest.raises(AuthenticationFailed) as caught:
        h.run_day(dsn, wrong)
    assert "sk-wrong" not in str(caught.value)
    log = sim.requests()
    assert [e["status"] for e in log] == [401], "a wrong key must cost exactly one request"
    book = h.assert_invariant(dsn, schema, wrong.version)
    assert book.reasons() == {"auth_failed": 25}
    assert {r["http_status"] for r in book.failed.values()} == {401}

    fixed = h.make_config(sim.base_url, key, schema, chunk_size=100)
    assert fixed.version == wrong.version  # the key is not part of what the analysis is
    (report,) = h.run_day(dsn, fixed).reports
    assert report.analyzed == 25 and report.skipped_already_done == 0
    book = h.assert_invariant(dsn, schema, fixed.version)
    assert len(book.analyzed) == 25 and not book.failed


def test_reconciliation_records_a_review_that_lost_its_outcome(wh, endpoint, key):
    """If an outcome never reaches the warehouse (a bug, a lost write), the chunk still ends accounted."""
    dsn, schema = wh
    sim = endpoint()
    h.seed(dsn, schema, h.sample(5))
    cfg = h.make_config(sim.base_url, key, schema)
    h.run_day(dsn, cfg)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DELETE FROM {}.review_analysis WHERE review_id = 'r-00002'").format(
                sql.Identifier(schema)
            )
        )
        reviews = [r for r in h.sample(5)]
        recorded = pipeline.reconcile_chunk(conn, cfg, reviews, day=h.DAY, version=cfg.version)
    assert recorded == 1
    book = h.assert_invariant(dsn, schema, cfg.version)
    assert book.failed["r-00002"]["reason"] == "missing_in_reply"


def test_a_warehouse_that_stops_accepting_writes_stops_the_chunk_and_the_retry_finishes_it(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint(latency_median_ms=50, latency_p95_ms=70)
    h.seed(dsn, schema, h.sample(40))
    cfg = h.make_config(sim.base_url, key, schema, chunk_size=100, max_concurrency=2)
    broken = threading.Event()

    def break_warehouse() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if count(dsn, schema) >= 5:
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute(
                            sql.SQL("ALTER TABLE {}.review_analysis RENAME TO gone").format(
                                sql.Identifier(schema)
                            )
                        )
                    broken.set()
                    return
            except psycopg.errors.UndefinedTable:
                pass
            time.sleep(0.01)

    saboteur = threading.Thread(target=break_warehouse)
    saboteur.start()
    with pytest.raises(psycopg.errors.UndefinedTable):
        h.run_day(dsn, cfg)
    saboteur.join()
    assert broken.is_set()
    sent_first = len(sim.requests())
    assert sent_first < 40, "the chunk kept paying for answers it could not store"

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {}.gone RENAME TO review_analysis").format(sql.Identifier(schema)))
        saved = count(dsn, schema)
    (report,) = h.run_day(dsn, cfg).reports
    assert report.skipped_already_done == saved and report.requests == 40 - saved
    h.assert_invariant(dsn, schema, cfg.version)
