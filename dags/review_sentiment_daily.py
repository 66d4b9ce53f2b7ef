"""Nightly LLM analysis of product reviews.

Extract the day's reviews → plan chunks → analyze each chunk (mapped, in the `llm_provider` pool) →
aggregate the day. Results land in `review_analysis`, failures with their reason in
`review_analysis_failures`, and the day's numbers in `review_daily_summary`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from reviewlens_airflow import tasks
from reviewlens_airflow.params import PARAMS

POOL = "llm_provider"


@dag(
    dag_id="review_sentiment_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    params=PARAMS,
    default_args={
        "retries": 2,
        "retry_delay": pendulum.duration(seconds=30),
        "retry_exponential_backoff": True,
    },
    tags=["reviewlens", "llm"],
    doc_md=__doc__,
)
def review_sentiment_daily():
    @task
    def check_setup() -> dict:
        """Fail before any spend if a connection, table, key or model is wrong; prove the endpoint."""
        return tasks.check_setup(get_current_context())

    @task
    def plan_chunks() -> list[dict]:
        """Cut the interval's reviews into chunks by stable key."""
        return tasks.plan_chunks(get_current_context())

    @task(pool=POOL, retries=3)
    def analyze_chunk(chunk: dict, setup: dict | None = None) -> dict:
        """Analyze one chunk against the LLM endpoint (seeded by check_setup), checkpointing as it goes."""
        return tasks.analyze_chunk(chunk, get_current_context(), setup)

    @task(trigger_rule="none_failed")
    def aggregate_day(reports: list[dict]) -> dict:
        """Write the day's summary row from the warehouse tables."""
        return tasks.aggregate_day(get_current_context())

    setup = check_setup()
    chunks = plan_chunks()
    setup >> chunks
    aggregate_day(analyze_chunk.partial(setup=setup).expand(chunk=chunks))


review_sentiment_daily_dag = review_sentiment_daily()
