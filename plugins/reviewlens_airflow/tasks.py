"""Task bodies of review_sentiment_daily: each reads the Airflow context and calls the core."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from reviewlens import pipeline
from reviewlens.dry_run import estimate_day
from reviewlens.errors import AuthenticationFailed, ConfigurationError
from reviewlens.models import ChunkSpec
from reviewlens.preflight import check_and_prove_endpoint, check_endpoint
from reviewlens.sources import Interval, open_source
from reviewlens_airflow.hooks import WarehouseHook
from reviewlens_airflow.params import build_config

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def fail_fast(func: F) -> F:
    """Fail the task without Airflow's retries when retrying cannot help.

    A ConfigurationError (a missing table, a wrong URL, model or key found before any spend) or an
    AuthenticationFailed (the key was rejected mid-run; the chunk has recorded ``auth_failed`` for its
    reviews) needs an operator, not another attempt in 30 s: retries would only delay the alert.
    The message is kept; it never contains the key.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigurationError, AuthenticationFailed) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]


def _interval(context: dict[str, Any]) -> Interval:
    day = context["params"].get("day")
    if day:
        return pipeline.interval_for_day(day)
    return Interval(context["data_interval_start"], context["data_interval_end"])


@fail_fast
def check_setup(context: dict[str, Any]) -> dict[str, Any]:
    """Fail before any spend: warehouse, source table and columns, endpoint, key and model.

    Then prove the endpoint with one tiny chat completion (not in a dry run, which sends nothing):
    the returned ``endpoint`` facts (key verified, response_format; no secret) seed every
    ``analyze_chunk``, so that no chunk waits a round trip for a lone first request.
    """
    cfg = build_config(context["params"], shared_budget=False)
    with WarehouseHook().connect() as conn:
        open_source(cfg.source, conn).check()
    if context["params"].get("dry_run"):
        info = check_endpoint(cfg.llm)
    else:
        info = check_and_prove_endpoint(cfg.llm, cfg.taxonomy)
    log.info(
        "Setup OK: endpoint %s serves model %s; analysis version %s; endpoint facts %s",
        cfg.llm.base_url,
        cfg.llm.model,
        cfg.version,
        info.get("endpoint", "not proven (dry run)"),
    )
    return {"analysis_version": cfg.version, "model": cfg.llm.model, **info}


@fail_fast
def plan_chunks(context: dict[str, Any]) -> list[dict[str, Any]]:
    """Chunk descriptors of the interval (never review text); none in a dry run."""
    cfg = build_config(context["params"], shared_budget=False)
    with WarehouseHook().connect() as conn:
        if context["params"].get("dry_run"):
            return _log_estimate(estimate_day(conn, cfg, _interval(context)))
        chunks = pipeline.plan_chunks(conn, cfg, _interval(context))
    return [c.to_xcom() for c in chunks]


def _log_estimate(estimate: dict[str, Any]) -> list[dict[str, Any]]:
    log.info(
        "Dry run for %s: %d review(s), %d already finished, %d request(s), ~%d prompt + %d output tokens, "
        "~$%.4f%s. Nothing was sent.",
        estimate["day"],
        estimate["reviews"],
        estimate["already_finished"],
        estimate["requests"],
        estimate["prompt_tokens"],
        estimate["output_tokens"],
        estimate["cost_usd"],
        "" if estimate["priced"] else " (model not in the price table)",
    )
    return []


@fail_fast
def analyze_chunk(
    chunk: dict[str, Any], context: dict[str, Any], setup: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Analyze one chunk and return its counts; ``setup`` is check_setup's XCom (the endpoint facts)."""
    cfg = build_config(context["params"])
    endpoint = (setup or {}).get("endpoint")
    report = pipeline.analyze_chunk(
        WarehouseHook().connect, cfg, ChunkSpec.from_xcom(chunk), endpoint=endpoint
    )
    return report.to_xcom()


@fail_fast
def aggregate_day(context: dict[str, Any]) -> dict[str, Any]:
    """Write the day's summary row and return it (counts only); in a dry run, return the estimate."""
    cfg = build_config(context["params"], shared_budget=False)
    with WarehouseHook().connect() as conn:
        if context["params"].get("dry_run"):
            return {"dry_run": True, **estimate_day(conn, cfg, _interval(context))}
        row = pipeline.aggregate_day(conn, cfg, _interval(context))
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
