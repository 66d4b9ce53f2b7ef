"""A dry run prices a day without a single request, and close to what the real run then uses."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import psycopg

from reviewlens.config import LLMSettings, Secret
from reviewlens.dry_run import estimate_day
from reviewlens.pipeline import PipelineConfig, aggregate_day, analyze_chunk, interval_for_day, plan_chunks
from reviewlens.sample_data import generate_reviews, seed_reviews

DAY = date(2026, 9, 9)


def test_dry_run_sends_nothing_and_lands_within_ten_percent_of_the_real_run(
    pg_database, simulator, sim_api_key
):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        seed_reviews(conn, list(generate_reviews([DAY], 120, seed=5, hostile_share=0.05)))
    cfg = PipelineConfig(llm=LLMSettings(base_url=simulator.base_url, api_key=Secret(sim_api_key)))
    interval = interval_for_day(DAY)

    with psycopg.connect(pg_database, autocommit=True) as conn:
        estimate = estimate_day(conn, cfg, interval)
    assert simulator.requests() == []
    assert estimate["reviews"] == 120 and estimate["already_finished"] == 0

    @contextmanager
    def connect():
        with psycopg.connect(pg_database, autocommit=True) as conn:
            yield conn

    with psycopg.connect(pg_database, autocommit=True) as conn:
        chunks = plan_chunks(conn, cfg, interval)
    for chunk in chunks:
        analyze_chunk(connect, cfg, chunk)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        actual = aggregate_day(conn, cfg, interval)
        after = estimate_day(conn, cfg, interval)

    assert abs(estimate["prompt_tokens"] - actual["prompt_tokens"]) <= 0.10 * actual["prompt_tokens"]
    assert abs(estimate["output_tokens"] - actual["completion_tokens"]) <= 0.10 * actual["completion_tokens"]
    assert after["to_request"] == 0 and after["requests"] == 0 and after["already_finished"] == 120
