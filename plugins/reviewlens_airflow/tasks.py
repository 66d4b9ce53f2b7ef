"""Task bodies of review_sentiment_daily: each reads the Airflow context and calls the core."""

from __future__ import annotations

import logging
from typing import Any

from reviewlens import pipeline
from reviewlens.models import ChunkSpec
from reviewlens.preflight import check_endpoint
from reviewlens.sources import Interval, open_source

from reviewlens_airflow.hooks import WarehouseHook
from reviewlens_airflow.params import build_config

log = logging.getLogger(__name__)


def _interval(context: dict[str, Any]) -> Interval:
    day = context["params"].get("day")
    if day:
        return pipeline.interval_for_day(day)
    return Interval(context["data_interval_start"], context["data_interval_end"])


def check_setup(context: dict[str, Any]) -> dict[str, Any]:
    """Fail before any spend: warehouse, source table and columns, endpoint, key and model."""
    cfg = build_config(context["params"], shared_budget=False)
    with WarehouseHook().connect() as conn:
        open_source(cfg.source, conn).check()
    info = check_endpoint(cfg.llm)
    log.info("Setup OK: endpoint %s serves model %s; analysis version %s", cfg.llm.base_url, cfg.llm.model, cfg.version)
    return {"analysis_version": cfg.version, "model": cfg.llm.model, **info}


def plan_chunks(context: dict[str, Any]) -> list[dict[str, Any]]:
    """Chunk descriptors of the interval (never review text)."""
    cfg = build_config(context["params"], shared_budget=False)
    with WarehouseHook().connect() as conn:
        chunks = pipeline.plan_chunks(conn, cfg, _interval(context))
    return [c.to_xcom() for c in chunks]


def analyze_chunk(chunk: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Analyze one chunk and return its counts."""
    cfg = build_config(context["params"])
    report = pipeline.analyze_chunk(WarehouseHook().connect, cfg, ChunkSpec.from_xcom(chunk))
    return report.to_xcom()


def aggregate_day(context: dict[str, Any]) -> dict[str, Any]:
    """Write the day's summary row and return it (counts only)."""
    cfg = build_config(context["params"], shared_budget=False)
    with WarehouseHook().connect() as conn:
        row = pipeline.aggregate_day(conn, cfg, _interval(context))
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
