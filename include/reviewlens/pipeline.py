"""The pipeline's steps as plain functions: plan a day, analyze a chunk, aggregate the day.

The DAG calls these with a warehouse connection and a ``PipelineConfig``; tests, the demo and the
benchmarks call them directly. Every review given to ``analyze_chunk`` ends with exactly one row for
the analysis version — a result or a failure with its reason — before the chunk reports success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from reviewlens.aggregate import compute_daily_summary
from reviewlens.checkpoint import Checkpointer
from reviewlens.config import LLMSettings, RunSettings, SourceSettings
from reviewlens.errors import AuthenticationFailed, ConfigurationError
from reviewlens.models import ChunkReport, ChunkSpec, Review, ReviewOutcome
from reviewlens.pricing import PriceTable, load_prices
from reviewlens.sources import Interval, open_source
from reviewlens.taxonomy import Taxonomy, load_taxonomy
from reviewlens.versioning import analysis_version
from reviewlens.warehouse import ensure_schema, finished_review_ids, outcome_counts, write_outcomes

log = logging.getLogger(__name__)

ConnFactory = Callable[[], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything one run needs, built by the Airflow layer from connections and Params."""

    llm: LLMSettings
    source: SourceSettings = field(default_factory=SourceSettings)
    run: RunSettings = field(default_factory=RunSettings)
    warehouse_schema: str = "public"
    taxonomy: Taxonomy = field(default_factory=lambda: load_taxonomy(None))
    prices: PriceTable = field(default_factory=lambda: load_prices(None))
    # DSN of the warehouse for the cluster-wide rate budget (None: budget local to the chunk).
    budget_dsn: str | None = None

    @property
    def version(self) -> str:
        return analysis_version(self.llm.model, self.taxonomy)


def interval_for_day(day: str | date) -> Interval:
    """The UTC calendar day ``[day, day + 1)``."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return Interval(start, start + timedelta(days=1))


def plan_chunks(conn: psycopg.Connection, cfg: PipelineConfig, interval: Interval) -> list[ChunkSpec]:
    """Prepare the warehouse and cut the interval's reviews into chunks by stable key."""
    ensure_schema(conn, cfg.warehouse_schema)
    source = open_source(cfg.source, conn)
    source.check()
    chunks = source.plan(interval, cfg.run.chunk_size)
    if len(chunks) > cfg.run.max_chunks:
        total = sum(c.size for c in chunks)
        raise ConfigurationError(
            f"{total} reviews in {interval.day} make {len(chunks)} chunks of {cfg.run.chunk_size}, more than "
            f"the {cfg.run.max_chunks} mapped tasks allowed; raise the `chunk_size` Param to at least "
            f"{-(-total // cfg.run.max_chunks)}."
        )
    log.info(
        "Planned %d chunk(s) with %d review(s) for %s", len(chunks), sum(c.size for c in chunks), interval.day
    )
    return chunks


def analyze_chunk(
    connect: ConnFactory,
    cfg: PipelineConfig,
    chunk: ChunkSpec,
    *,
    endpoint: Mapping[str, Any] | None = None,
) -> ChunkReport:
    """Analyze one chunk: skip what is finished, checkpoint as results arrive, reconcile at the end.

    ``endpoint`` is what the preflight proved (``EndpointState.as_dict``, from ``check_setup``): with
    it the chunk's first requests go out together instead of one request alone first. Without it,
    or when it was learned from another endpoint or model, the chunk proves the endpoint itself.
    """
    started = time.monotonic()
    version = cfg.version
    day = date.fromisoformat(chunk.day)
    with connect() as conn:
        source = open_source(cfg.source, conn)
        reviews = source.read_chunk(chunk)
        done = finished_review_ids(
            conn, [r.review_id for r in reviews], version=version, schema=cfg.warehouse_schema
        )
    todo = [r for r in reviews if r.review_id not in done]
    meta = {r.review_id: (r.product_id, r.rating) for r in reviews}
    log.info(
        "Chunk %s/%d: %d review(s), %d already finished for version %s, %d to analyze",
        chunk.day,
        chunk.index,
        len(reviews),
        len(done),
        version,
        len(todo),
    )

    writer = _Writer(
        connect, day=day, version=version, model=cfg.llm.model, meta=meta, schema=cfg.warehouse_schema
    )
    checkpointer = Checkpointer(
        writer.write,
        expected_ids={r.review_id for r in todo},
        every_n=cfg.run.checkpoint_every_n,
        every_s=cfg.run.checkpoint_every_s,
    )
    auth_error: AuthenticationFailed | None = None
    stats = {}
    try:
        stats = asyncio.run(_analyze(todo, cfg, checkpointer, endpoint))
    except AuthenticationFailed as exc:  # outcomes for every review were already checkpointed
        auth_error = exc
    finally:
        writer.close()
    with connect() as conn:
        reconciled = reconcile_chunk(conn, cfg, reviews, day=day, version=version)
    if auth_error is not None:
        raise auth_error
    report = ChunkReport(
        day=chunk.day,
        index=chunk.index,
        reviews=len(reviews),
        analyzed=checkpointer.analyzed,
        failed=checkpointer.failed + reconciled,
        skipped_already_done=len(done),
        requests=int(stats.get("requests", 0)),
        prompt_tokens=checkpointer.prompt_tokens,
        completion_tokens=checkpointer.completion_tokens,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("Chunk %s/%d done: %s", chunk.day, chunk.index, report)
    return report


async def _analyze(
    todo: list[Review], cfg: PipelineConfig, checkpointer: Checkpointer, endpoint: Mapping[str, Any] | None
) -> dict:
    """Run the analyzer with one pooled client and the account's rate budget (shared via the warehouse)."""
    from reviewlens.analyzer import EndpointState, analyze_reviews
    from reviewlens.client import ChatClient
    from reviewlens.rate_budget import make_budget

    if not todo:
        return {"requests": 0}
    flusher = asyncio.create_task(checkpointer.run())
    stats: dict = {}
    # Seeded by the preflight: key proven and response_format known, so no lone first request.
    state = EndpointState.from_dict(endpoint, cfg.llm)
    log.info(
        "Endpoint %s (response_format %s)",
        f"proven at {state.checked_at} by the preflight" if state.checked else "not proven yet",
        state.response_format or cfg.llm.response_format,
    )

    async def analyze() -> None:
        async with (
            make_budget(cfg.llm, dsn=cfg.budget_dsn) as budget,
            ChatClient(
                cfg.llm, budget=budget, key_verified=state.checked, expected_output_ratio=state.output_ratio
            ) as client,
        ):
            try:
                await analyze_reviews(
                    todo,
                    client,
                    settings=cfg.llm,
                    taxonomy=cfg.taxonomy,
                    prices=cfg.prices,
                    max_review_chars=cfg.run.max_review_chars,
                    on_outcome=checkpointer.add,
                    endpoint_state=state,
                )
            finally:
                stats["requests"] = client.stats.requests

    work = asyncio.create_task(analyze())
    try:
        # If checkpointing breaks (the warehouse is gone), stop paying for answers that cannot be kept.
        await asyncio.wait({work, flusher}, return_when=asyncio.FIRST_COMPLETED)
        if flusher.done() and not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            flusher.result()  # raises the write error
        await work
    finally:
        await checkpointer.close(flusher)
    return stats


class _Writer:
    """Writes checkpoint batches over one warehouse connection kept for the chunk (reopened on error)."""

    def __init__(
        self,
        connect: ConnFactory,
        *,
        day: date,
        version: str,
        model: str,
        meta: dict[str, tuple[str | None, int | None]],
        schema: str,
    ) -> None:
        self._connect = connect
        self._stack: ExitStack | None = None
        self._conn: psycopg.Connection | None = None
        self._args = {"day": day, "version": version, "model": model, "review_meta": meta, "schema": schema}

    def _open(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self.close()
            self._stack = ExitStack()
            self._conn = self._stack.enter_context(self._connect())
        return self._conn

    def write(self, batch: list[ReviewOutcome]) -> None:
        try:
            write_outcomes(self._open(), batch, **self._args)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # One reconnect for a dropped connection; a batch is one transaction: never half-written.
            log.warning("Checkpoint write failed (%s); reconnecting once", type(exc).__name__)
            self.close()
            write_outcomes(self._open(), batch, **self._args)

    def close(self) -> None:
        stack, self._stack, self._conn = self._stack, None, None
        if stack is not None:
            try:
                stack.close()
            except Exception:  # closing a broken connection must not hide the real outcome
                log.debug("Closing the checkpoint connection failed", exc_info=True)


def reconcile_chunk(
    conn: psycopg.Connection, cfg: PipelineConfig, reviews: list[Review], *, day: date, version: str
) -> int:
    """Make sure every review of the chunk has exactly one row; record the unaccounted as failed.

    Returns how many reviews had to be recorded here. A review without any row means an outcome was
    lost on the way (a reply that omitted it past every retry, or a bug): it is recorded as failed,
    never silently dropped, and retried by the next run.
    """
    counts = outcome_counts(
        conn, [r.review_id for r in reviews], version=version, schema=cfg.warehouse_schema
    )
    missing = [rid for rid, n in counts.items() if n == 0]
    doubled = [rid for rid, n in counts.items() if n > 1]
    if doubled:  # the write path forbids this; if it ever happens, the result wins
        from psycopg import sql

        conn.execute(
            sql.SQL(
                "DELETE FROM {}.review_analysis_failures WHERE analysis_version = %s AND review_id = ANY(%s)"
            ).format(sql.Identifier(cfg.warehouse_schema)),
            (version, doubled),
        )
        log.error("Reconciliation removed %d failure row(s) shadowed by a result", len(doubled))
    if missing:
        log.error("Reconciliation: %d review(s) had no outcome; recording them as failed", len(missing))
        write_outcomes(
            conn,
            [
                ReviewOutcome(
                    review_id=rid,
                    ok=False,
                    reason="missing_in_reply",
                    detail="no outcome was produced for this review; it will be retried by the next run",
                )
                for rid in missing
            ],
            day=day,
            version=version,
            model=cfg.llm.model,
            schema=cfg.warehouse_schema,
        )
    return len(missing)


def aggregate_day(conn: psycopg.Connection, cfg: PipelineConfig, interval: Interval) -> dict:
    """Compute and store the day's summary row; fail loudly if any review is unaccounted for."""
    ensure_schema(conn, cfg.warehouse_schema)
    source = open_source(cfg.source, conn)
    total = source.count(interval)
    row = compute_daily_summary(
        conn,
        day=interval.start.date(),
        version=cfg.version,
        model=cfg.llm.model,
        reviews_total=total,
        schema=cfg.warehouse_schema,
    )
    accounted = row["reviews_analyzed"] + row["reviews_failed"]
    if accounted != total:
        raise RuntimeError(
            f"{interval.day}: {total} source reviews but {row['reviews_analyzed']} analyzed + "
            f"{row['reviews_failed']} failed = {accounted} for version {cfg.version}; "
            "a chunk did not finish — clear and re-run the failed analyze_chunk tasks."
        )
    return row
