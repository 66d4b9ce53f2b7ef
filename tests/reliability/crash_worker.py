"""Run one chunk of a day in its own process, so a test can SIGKILL it mid-flight.

Usage: ``python -m tests.reliability.crash_worker DSN SCHEMA BASE_URL DAY`` with the API key in
``REVIEWLENS_TEST_KEY`` (never on the command line). Uses the pipeline's default checkpoint cadence.
Prints ``PLANNED <n>`` once the chunk is planned and ``DONE <report>`` at the end.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

import psycopg

from reviewlens import pipeline
from reviewlens.config import LLMSettings, RunSettings, Secret, SourceSettings
from reviewlens.pipeline import PipelineConfig


def main(dsn: str, schema: str, base_url: str, day: str) -> None:
    logging.basicConfig(level=logging.WARNING)

    @contextmanager
    def connect():
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn

    cfg = PipelineConfig(
        llm=LLMSettings(
            base_url=base_url,
            api_key=Secret(os.environ["REVIEWLENS_TEST_KEY"]),
            max_concurrency=int(os.environ.get("REVIEWLENS_TEST_CONCURRENCY", "16")),
            timeout_s=5.0,
            max_attempts=3,
            reviews_per_request=1,  # the test recognises each review by its request's prompt tokens
        ),
        source=SourceSettings(schema=schema),
        run=RunSettings(chunk_size=100_000),  # one chunk; the default checkpoint cadence
        warehouse_schema=schema,
    )
    with connect() as conn:
        (chunk,) = pipeline.plan_chunks(conn, cfg, pipeline.interval_for_day(day))
    print(f"PLANNED {chunk.size}", flush=True)
    report = pipeline.analyze_chunk(connect, cfg, chunk)
    print(f"DONE {report}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
