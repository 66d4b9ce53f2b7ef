"""Estimate a day's requests, tokens and cost before spending anything.

Reads the day's reviews chunk by chunk exactly as a real run would, leaves out the reviews a real
run would not request (finished for this analysis version), and prices the rest with the dry-run
estimate of the very messages the analyzer would send. No request reaches the endpoint.
"""

from __future__ import annotations

import psycopg

from reviewlens.estimate import Estimate, estimate_cost
from reviewlens.pipeline import PipelineConfig
from reviewlens.sources import Interval, open_source
from reviewlens.warehouse import ensure_schema, finished_review_ids


def estimate_day(conn: psycopg.Connection, cfg: PipelineConfig, interval: Interval) -> dict:
    """What running ``interval`` would send and cost now; counts and figures only."""
    ensure_schema(conn, cfg.warehouse_schema)
    source = open_source(cfg.source, conn)
    source.check()
    total = finished = 0
    estimates: list[Estimate] = []
    for chunk in source.plan(interval, cfg.run.chunk_size):
        reviews = source.read_chunk(chunk)
        done = finished_review_ids(
            conn, [r.review_id for r in reviews], version=cfg.version, schema=cfg.warehouse_schema
        )
        todo = [r for r in reviews if r.review_id not in done]
        total += len(reviews)
        finished += len(done)
        estimates.append(
            estimate_cost(todo, cfg.llm, cfg.taxonomy, cfg.prices, max_review_chars=cfg.run.max_review_chars)
        )
    return {
        "day": interval.day,
        "analysis_version": cfg.version,
        "model": cfg.llm.model,
        "reviews": total,
        "already_finished": finished,
        "to_request": sum(e.reviews - e.skipped for e in estimates),
        "unusable_input": sum(e.skipped for e in estimates),
        "requests": sum(e.requests for e in estimates),
        "prompt_tokens": sum(e.prompt_tokens for e in estimates),
        "output_tokens": sum(e.output_tokens for e in estimates),
        "cost_usd": round(sum(e.cost_usd for e in estimates), 6),
        "priced": all(e.priced for e in estimates) if estimates else cfg.prices.is_priced(cfg.llm.model),
    }
