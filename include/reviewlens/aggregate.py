"""The day's summary row, computed in SQL from the warehouse tables (never from XCom)."""

from __future__ import annotations

from datetime import date

import psycopg
from psycopg import sql

from reviewlens.warehouse import write_daily_summary


def compute_daily_summary(
    conn: psycopg.Connection,
    *,
    day: date,
    version: str,
    model: str,
    reviews_total: int,
    schema: str = "public",
    store: bool = True,
) -> dict:
    """Sentiment distribution, category counts, failures, tokens, cost and latency of one day."""
    params = {"day": day, "version": version}
    r = sql.SQL("{}.review_analysis").format(sql.Identifier(schema))
    f = sql.SQL("{}.review_analysis_failures").format(sql.Identifier(schema))
    where = sql.SQL("review_day = %(day)s AND analysis_version = %(version)s")
    analyzed = conn.execute(
        sql.SQL(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE sentiment = 'positive'),
                   count(*) FILTER (WHERE sentiment = 'neutral'),
                   count(*) FILTER (WHERE sentiment = 'negative'),
                   coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
                   coalesce(sum(cost_usd), 0),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
              FROM {r} WHERE {w}
            """
        ).format(r=r, w=where),
        params,
    ).fetchone()
    categories = conn.execute(
        sql.SQL(
            "SELECT c, count(*) FROM {r}, unnest(categories) AS c WHERE {w} "
            "GROUP BY c ORDER BY count(*) DESC, c"
        ).format(r=r, w=where),
        params,
    ).fetchall()
    failures = conn.execute(
        sql.SQL(
            """
            SELECT reason, count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
                   coalesce(sum(cost_usd), 0)
              FROM {f} WHERE {w} GROUP BY reason ORDER BY reason
            """
        ).format(f=f, w=where),
        params,
    ).fetchall()
    row = {
        "day": day,
        "analysis_version": version,
        "model": model,
        "reviews_total": reviews_total,
        "reviews_analyzed": int(analyzed[0]),
        "reviews_failed": sum(int(x[1]) for x in failures),
        "positive": int(analyzed[1]),
        "neutral": int(analyzed[2]),
        "negative": int(analyzed[3]),
        "category_counts": {c: int(n) for c, n in categories},
        "failure_reasons": {reason: int(n) for reason, n, *_ in failures},
        # Failed reviews may have cost tokens too (an invalid reply is paid for).
        "prompt_tokens": int(analyzed[4]) + sum(int(x[2]) for x in failures),
        "completion_tokens": int(analyzed[5]) + sum(int(x[3]) for x in failures),
        "cost_usd": float(analyzed[6]) + sum(float(x[4]) for x in failures),
        "latency_p50_ms": None if analyzed[7] is None else round(float(analyzed[7]), 1),
        "latency_p95_ms": None if analyzed[8] is None else round(float(analyzed[8]), 1),
    }
    if store:
        write_daily_summary(conn, row, schema=schema)
    return row
