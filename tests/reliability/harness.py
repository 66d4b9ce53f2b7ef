"""The reliability harness: fast settings, seeding, running a day chunk by chunk, and the invariant.

Everything here uses real parts: a real PostgreSQL schema, the real ``ChatClient`` over loopback HTTP
to the local endpoint (``reviewlens.simulator``), and the pipeline's own functions. Nothing is patched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from reviewlens import pipeline
from reviewlens.config import LLMSettings, RunSettings, Secret, SourceSettings
from reviewlens.models import ChunkReport, Review
from reviewlens.pipeline import PipelineConfig
from reviewlens.sample_data import generate_reviews, seed_reviews

# The failure codes of docs/contracts.md; nothing else may appear in review_analysis_failures.
REASONS = frozenset(
    {
        "empty_text",
        "too_long",
        "invalid_json",
        "schema_violation",
        "missing_in_reply",
        "rate_limited",
        "timeout",
        "provider_error",
        "auth_failed",
        "bad_request",
    }
)

DAY = date(2026, 10, 5)


def fast_llm(base_url: str, key: str, **changes: object) -> LLMSettings:
    """Settings that keep a faulty run short: small timeout, few attempts, short deadline."""
    values: dict[str, object] = {
        "base_url": base_url,
        "api_key": Secret(key),
        "timeout_s": 0.6,
        "max_attempts": 3,
        "review_deadline_s": 15.0,
        "max_concurrency": 32,
        "reviews_per_request": 1,  # K is chosen per test; the product default may differ
    }
    values.update(changes)
    return LLMSettings(**values)  # type: ignore[arg-type]


def make_config(
    base_url: str,
    key: str,
    schema: str,
    *,
    source: SourceSettings | None = None,
    chunk_size: int = 50,
    checkpoint_every_n: int = 5,
    checkpoint_every_s: float = 0.2,
    **llm: object,
) -> PipelineConfig:
    """A PipelineConfig writing to ``schema`` and reading ``schema.reviews`` (or ``source``)."""
    return PipelineConfig(
        llm=fast_llm(base_url, key, **llm),
        source=source or SourceSettings(schema=schema),
        run=RunSettings(
            chunk_size=chunk_size,
            checkpoint_every_n=checkpoint_every_n,
            checkpoint_every_s=checkpoint_every_s,
        ),
        warehouse_schema=schema,
    )


def connector(dsn: str):
    """The ``ConnFactory`` analyze_chunk wants: a fresh autocommit connection per use."""

    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn

    return connect


def sample(n: int, *, day: date = DAY, seed: int = 3, prefix: str = "r") -> list[Review]:
    """``n`` ordinary sample reviews of ``day`` (no hostile ones: faults come from the endpoint)."""
    reviews = list(generate_reviews([day], n, seed=seed, hostile_share=0.0))
    return [
        Review(f"{prefix}-{i:05d}", r.body, r.product_id, r.rating, r.created_at)
        for i, r in enumerate(reviews)
    ]


def review(review_id: str, body: str, *, day: date = DAY, second: int = 0) -> Review:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Review(review_id, body, "P-1", 3, start + timedelta(seconds=second))


def seed(dsn: str, schema: str, reviews: Sequence[Review]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_reviews(conn, reviews, schema=schema)


@dataclass
class DayRun:
    """What running every chunk of a day produced."""

    reports: list[ChunkReport] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.reports)


def run_day(dsn: str, cfg: PipelineConfig, day: date = DAY, *, raise_errors: bool = True) -> DayRun:
    """Plan the day and analyze every chunk, the way the DAG's mapped tasks do."""
    connect = connector(dsn)
    interval = pipeline.interval_for_day(day)
    with connect() as conn:
        chunks = pipeline.plan_chunks(conn, cfg, interval)
    out = DayRun()
    for chunk in chunks:
        try:
            out.reports.append(pipeline.analyze_chunk(connect, cfg, chunk))
        except Exception as exc:
            if raise_errors:
                raise
            out.errors.append(exc)
    return out


@dataclass
class Ledger:
    """The warehouse rows of one day and version."""

    analyzed: dict[str, dict]
    failed: dict[str, dict]

    def reasons(self) -> Counter[str]:
        return Counter(row["reason"] for row in self.failed.values())


def ledger(dsn: str, schema: str, version: str, day: date = DAY) -> Ledger:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        analyzed = cur.execute(
            sql.SQL(
                "SELECT * FROM {}.review_analysis WHERE review_day = %s AND analysis_version = %s"
            ).format(sql.Identifier(schema)),
            (day, version),
        ).fetchall()
        failed = cur.execute(
            sql.SQL(
                "SELECT * FROM {}.review_analysis_failures WHERE review_day = %s AND analysis_version = %s"
            ).format(sql.Identifier(schema)),
            (day, version),
        ).fetchall()
    return Ledger({r["review_id"]: r for r in analyzed}, {r["review_id"]: r for r in failed})


def source_ids(dsn: str, schema: str, day: date = DAY, table: str = "reviews") -> set[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT review_id FROM {}.{} WHERE created_at >= %s AND created_at < %s").format(
                sql.Identifier(schema), sql.Identifier(table)
            ),
            (start, start + timedelta(days=1)),
        ).fetchall()
    return {r[0] for r in rows}


def assert_invariant(
    dsn: str, schema: str, version: str, day: date = DAY, *, expected_ids: Iterable[str] | None = None
) -> Ledger:
    """Nothing lost, nothing twice, for one day and analysis version.

    - analyzed + failed = the source reviews of the day (the very same ids: none lost, none invented);
    - no review is both analyzed and failed;
    - no key (review_id, analysis_version) appears twice in either table;
    - every failure carries a known reason code;
    - the day's summary row, if written, agrees with the tables.
    """
    ids = set(expected_ids) if expected_ids is not None else source_ids(dsn, schema, day)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("review_analysis", "review_analysis_failures"):
            dupes = conn.execute(
                sql.SQL(
                    "SELECT review_id, count(*) FROM {}.{} WHERE analysis_version = %s "
                    "GROUP BY review_id HAVING count(*) > 1"
                ).format(sql.Identifier(schema), sql.Identifier(table)),
                (version,),
            ).fetchall()
            assert dupes == [], f"duplicate keys in {table}: {dupes[:5]}"
        summary = conn.execute(
            sql.SQL(
                "SELECT reviews_total, reviews_analyzed, reviews_failed FROM {}.review_daily_summary "
                "WHERE day = %s AND analysis_version = %s"
            ).format(sql.Identifier(schema)),
            (day, version),
        ).fetchall()
    book = ledger(dsn, schema, version, day)
    both = set(book.analyzed) & set(book.failed)
    assert not both, f"{len(both)} review(s) both analyzed and failed: {sorted(both)[:5]}"
    accounted = set(book.analyzed) | set(book.failed)
    lost, invented = ids - accounted, accounted - ids
    assert not lost, f"{len(lost)} review(s) lost (no row): {sorted(lost)[:5]}"
    assert not invented, f"{len(invented)} row(s) for ids not in the source: {sorted(invented)[:5]}"
    assert len(book.analyzed) + len(book.failed) == len(ids)
    unknown = {rid: row["reason"] for rid, row in book.failed.items() if row["reason"] not in REASONS}
    assert not unknown, f"unknown failure reasons: {unknown}"
    assert all(row["detail"] for row in book.failed.values()), "a failure row without a detail"
    if summary:
        assert summary == [(len(ids), len(book.analyzed), len(book.failed))], summary
    return book


def chat_log(sim) -> list[dict]:
    """The endpoint's chat-completions request log (GET /models is not logged)."""
    return sim.requests()


def paid_ids(log: Iterable[dict]) -> Counter[str]:
    """How many 200 replies each fenced alias appeared in... not usable across requests; see crash test."""
    return Counter(rid for entry in log if entry["status"] == 200 for rid in entry["review_ids"])
