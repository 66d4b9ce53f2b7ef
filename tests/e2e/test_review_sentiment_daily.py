"""review_sentiment_daily end to end: real dag.test, real PostgreSQL, real HTTP to the local endpoint."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from reviewlens.preflight import PROOF_ALIAS
from reviewlens.sample_data import generate_reviews, seed_reviews
from scripts.airflow_env import llm_connection, warehouse_connection

pytestmark = pytest.mark.e2e

DAY1, DAY2 = date(2026, 10, 5), date(2026, 10, 6)


@pytest.fixture
def deployment(pg_database, simulator, sim_api_key, monkeypatch, airflow_db):
    """A warehouse with two days of reviews and both connections set as AIRFLOW_CONN_* variables."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        seed_reviews(conn, list(generate_reviews([DAY1, DAY2], [57, 31], seed=11, hostile_share=0.1)))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_WAREHOUSE", warehouse_connection(pg_database))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_LLM", llm_connection(simulator.base_url, sim_api_key))
    return pg_database, simulator


def run_day(day: date, **params):
    from review_sentiment_daily import review_sentiment_daily_dag as dag

    logical = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    # dag.test in one process can carry a Param from one run's conf into the next: pass every knob.
    conf = {"day": day.isoformat(), "chunk_size": 20, "dry_run": False, **params}
    run = dag.test(logical_date=logical, run_conf=conf)
    assert run.state == "success", f"DAG run for {day} ended {run.state}"
    return run


def snapshot(db_url: str, day: date) -> dict:
    with psycopg.connect(db_url) as conn:
        source = conn.execute(
            "SELECT count(*) FROM reviews WHERE created_at >= %s AND created_at < %s",
            (day, day + timedelta(days=1)),
        ).fetchone()[0]
        results = conn.execute(
            "SELECT review_id, sentiment, analyzed_at FROM review_analysis WHERE review_day = %s ORDER BY 1",
            (day,),
        ).fetchall()
        failures = conn.execute(
            "SELECT review_id, reason, failed_at FROM review_analysis_failures "
            "WHERE review_day = %s ORDER BY 1",
            (day,),
        ).fetchall()
        summary = conn.execute(
            "SELECT reviews_total, reviews_analyzed, reviews_failed, positive, neutral, negative, "
            "prompt_tokens FROM review_daily_summary WHERE day = %s",
            (day,),
        ).fetchall()
    return {"source": source, "results": results, "failures": failures, "summary": summary}


def test_a_day_ends_with_every_review_analyzed_or_failed_with_a_reason(deployment):
    db, _ = deployment
    run_day(DAY1)
    snap = snapshot(db, DAY1)
    assert snap["source"] == 57
    assert len(snap["results"]) + len(snap["failures"]) == 57
    assert {r[0] for r in snap["results"]}.isdisjoint({f[0] for f in snap["failures"]})
    assert all(reason for _, reason, _ in snap["failures"])
    assert len(snap["results"]) >= 45, "the sample is mostly ordinary reviews that must be analyzed"
    total, analyzed, failed, pos, neu, neg, tokens = snap["summary"][0]
    assert (total, analyzed, failed) == (57, len(snap["results"]), len(snap["failures"]))
    assert pos + neu + neg == analyzed and tokens > 0


def test_rerunning_a_day_changes_no_count_and_pays_for_nothing(deployment):
    db, sim = deployment
    run_day(DAY1)
    first = snapshot(db, DAY1)
    requests_before = len(sim.requests())
    run_day(DAY1)
    second = snapshot(db, DAY1)
    assert second == first
    chat_requests = [r for r in sim.requests()[requests_before:] if r.get("review_ids")]
    # The one request a run always pays is check_setup's proof of the endpoint (a synthetic review).
    assert [r["review_ids"] for r in chat_requests] == [[PROOF_ALIAS]], (
        "finished reviews were requested again"
    )


def test_the_next_day_does_not_touch_the_first(deployment):
    db, _ = deployment
    run_day(DAY1)
    before = snapshot(db, DAY1)
    run_day(DAY2)
    assert snapshot(db, DAY1) == before
    day2 = snapshot(db, DAY2)
    assert len(day2["results"]) + len(day2["failures"]) == day2["source"] == 31


def test_a_day_without_reviews_writes_a_zero_summary(deployment):
    db, _ = deployment
    empty = date(2026, 1, 1)
    run_day(empty)
    snap = snapshot(db, empty)
    assert snap["summary"] == [(0, 0, 0, 0, 0, 0, 0)]


def test_a_dry_run_estimates_the_day_without_sending_or_writing_anything(deployment):
    db, sim = deployment
    run = run_day(DAY1, dry_run=True)
    assert [r for r in sim.requests() if r.get("review_ids")] == []
    snap = snapshot(db, DAY1)
    assert snap["results"] == [] and snap["failures"] == [] and snap["summary"] == []
    estimate = next(ti for ti in run.get_task_instances() if ti.task_id == "aggregate_day")
    assert estimate.state == "success"
    run_day(DAY1)
    assert len(snapshot(db, DAY1)["results"]) > 0


def test_check_setup_proves_the_endpoint_once_and_every_chunk_opens_its_window_at_once(
    deployment, simulator_factory, sim_api_key, monkeypatch
):
    from reviewlens.simulator import SimulatorConfig

    db, _ = deployment
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, latency_median_ms=150))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_LLM", llm_connection(sim.base_url, sim_api_key))
    run_day(DAY1, reviews_per_request=1)  # 57 reviews in 3 chunks of 20, one request per review
    log = sorted(sim.requests(), key=lambda e: e["t_start"])
    assert log[0]["review_ids"] == [PROOF_ALIAS] and log[0]["status"] == 200
    assert all(e["review_ids"] != [PROOF_ALIAS] for e in log[1:])  # one proof per run, not per chunk

    def alone(entry: dict) -> bool:
        return not any(
            o is not entry and o["t_start"] < entry["t_end"] and entry["t_start"] < o["t_end"] for o in log
        )

    # Without the seed each chunk would start with one request alone (one latency); seeded, none does.
    assert [e["review_ids"] for e in log if alone(e)] == [[PROOF_ALIAS]]
    assert len(snapshot(db, DAY1)["results"]) >= 45
