"""Warehouse tables and the idempotent writes into them (PostgreSQL, psycopg 3).

Exactly-once per review and analysis version is a property of the schema, not of the caller:
``review_analysis`` and ``review_analysis_failures`` share the key ``(review_id, analysis_version)``,
a result replaces a failure in the same transaction, and a failure is never written over a result.
A retried task or a re-run day therefore replaces rows and never duplicates them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date

import psycopg
from psycopg import sql

from reviewlens.models import ReviewOutcome

RAW_REPLY_LIMIT = 2000
DETAIL_LIMIT = 1000

# Failures caused by the review itself: re-sending the same text cannot change the answer.
FINAL_FAILURE_REASONS = frozenset({"empty_text", "too_long"})

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.review_analysis (
    review_id         text        NOT NULL,
    analysis_version  text        NOT NULL,
    review_day        date        NOT NULL,
    product_id        text,
    rating            smallint,
    model             text        NOT NULL,
    sentiment         text        NOT NULL CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    categories        text[]      NOT NULL DEFAULT '{{}}',
    summary           text        NOT NULL,
    confidence        real,
    language          text,
    flags             text[]      NOT NULL DEFAULT '{{}}',
    prompt_tokens     integer     NOT NULL DEFAULT 0,
    completion_tokens integer     NOT NULL DEFAULT 0,
    cost_usd          numeric(14, 8) NOT NULL DEFAULT 0,
    latency_ms        real,
    attempts          integer     NOT NULL DEFAULT 1,
    analyzed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id, analysis_version)
);
CREATE INDEX IF NOT EXISTS review_analysis_day_idx
    ON {schema}.review_analysis (review_day, analysis_version);

CREATE TABLE IF NOT EXISTS {schema}.review_analysis_failures (
    review_id         text        NOT NULL,
    analysis_version  text        NOT NULL,
    review_day        date        NOT NULL,
    model             text        NOT NULL,
    reason            text        NOT NULL,
    detail            text,
    attempts          integer     NOT NULL DEFAULT 0,
    runs              integer     NOT NULL DEFAULT 1,
    http_status       integer,
    raw_reply         text,
    prompt_tokens     integer     NOT NULL DEFAULT 0,
    completion_tokens integer     NOT NULL DEFAULT 0,
    cost_usd          numeric(14, 8) NOT NULL DEFAULT 0,
    failed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id, analysis_version)
);
CREATE INDEX IF NOT EXISTS review_analysis_failures_day_idx
    ON {schema}.review_analysis_failures (review_day, analysis_version);

CREATE TABLE IF NOT EXISTS {schema}.review_daily_summary (
    day                 date        NOT NULL,
    analysis_version    text        NOT NULL,
    model               text        NOT NULL,
    reviews_total       integer     NOT NULL,
    reviews_analyzed    integer     NOT NULL,
    reviews_failed      integer     NOT NULL,
    positive            integer     NOT NULL,
    neutral             integer     NOT NULL,
    negative            integer     NOT NULL,
    category_counts     jsonb       NOT NULL,
    failure_reasons     jsonb       NOT NULL,
    prompt_tokens       bigint      NOT NULL,
    completion_tokens   bigint      NOT NULL,
    cost_usd            numeric(14, 6) NOT NULL,
    latency_p50_ms      real,
    latency_p95_ms      real,
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, analysis_version)
);
"""


def _clip(text: str | None, limit: int) -> str | None:
    """Cut text for storage; PostgreSQL rejects NUL in text, so it is removed here as a last guard."""
    if text is None:
        return None
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


def ensure_schema(conn: psycopg.Connection, schema: str = "public") -> None:
    """Create the warehouse tables if they are missing (safe to run every time)."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL(_DDL).format(schema=sql.Identifier(schema)))  # type: ignore[arg-type]


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def write_outcomes(
    conn: psycopg.Connection,
    outcomes: Sequence[ReviewOutcome],
    *,
    day: date,
    version: str,
    model: str,
    review_meta: dict[str, tuple[str | None, int | None]] | None = None,
    schema: str = "public",
) -> None:
    """Store outcomes in one transaction: results replace failures; failures never replace results."""
    if not outcomes:
        return
    meta = review_meta or {}
    results = [o for o in outcomes if o.ok]
    failures = [o for o in outcomes if not o.ok]
    with conn.transaction(), conn.cursor() as cur:
        if results:
            # A success replaces the review's failure row; what its failed attempts paid moves into the
            # result row, so a day's tokens and cost stay what was really spent.
            earlier = {
                row[0]: row[1:]
                for row in cur.execute(
                    sql.SQL(
                        "DELETE FROM {t} WHERE analysis_version = %s AND review_id = ANY(%s) "
                        "RETURNING review_id, prompt_tokens, completion_tokens, cost_usd, attempts"
                    ).format(t=_table(schema, "review_analysis_failures")),
                    (version, [o.review_id for o in results]),
                ).fetchall()
            }
            rows = []
            for o in results:
                paid_in, paid_out, paid_usd, tried = earlier.get(o.review_id, (0, 0, 0, 0))
                rows.append(
                    (
                        o.review_id,
                        version,
                        day,
                        *meta.get(o.review_id, (None, None)),
                        model,
                        o.sentiment,
                        o.categories,
                        _clip(o.summary, 2000),
                        o.confidence,
                        o.language,
                        o.flags,
                        o.prompt_tokens + paid_in,
                        o.completion_tokens + paid_out,
                        float(o.cost_usd) + float(paid_usd),
                        o.latency_ms,
                        max(o.attempts, 1) + tried,
                    )
                )
            cur.executemany(
                sql.SQL(
                    """
                    INSERT INTO {t} (review_id, analysis_version, review_day, product_id, rating, model,
                        sentiment, categories, summary, confidence, language, flags, prompt_tokens,
                        completion_tokens, cost_usd, latency_ms, attempts)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (review_id, analysis_version) DO UPDATE SET
                        review_day = EXCLUDED.review_day, product_id = EXCLUDED.product_id,
                        rating = EXCLUDED.rating, model = EXCLUDED.model,
                        sentiment = EXCLUDED.sentiment, categories = EXCLUDED.categories,
                        summary = EXCLUDED.summary, confidence = EXCLUDED.confidence,
                        language = EXCLUDED.language, flags = EXCLUDED.flags,
                        prompt_tokens = EXCLUDED.prompt_tokens,
                        completion_tokens = EXCLUDED.completion_tokens, cost_usd = EXCLUDED.cost_usd,
                        latency_ms = EXCLUDED.latency_ms, attempts = EXCLUDED.attempts,
                        analyzed_at = now()
                    """
                ).format(t=_table(schema, "review_analysis")),
                rows,
            )
        if failures:
            cur.executemany(
                sql.SQL(
                    """
                    INSERT INTO {t} (review_id, analysis_version, review_day, model, reason, detail,
                        attempts, http_status, raw_reply, prompt_tokens, completion_tokens, cost_usd)
                    SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s
                    WHERE NOT EXISTS (SELECT 1 FROM {r} WHERE review_id = %s AND analysis_version = %s)
                    ON CONFLICT (review_id, analysis_version) DO UPDATE SET
                        review_day = EXCLUDED.review_day, model = EXCLUDED.model,
                        reason = EXCLUDED.reason, detail = EXCLUDED.detail,
                        attempts = {t}.attempts + EXCLUDED.attempts, runs = {t}.runs + 1,
                        http_status = EXCLUDED.http_status, raw_reply = EXCLUDED.raw_reply,
                        prompt_tokens = {t}.prompt_tokens + EXCLUDED.prompt_tokens,
                        completion_tokens = {t}.completion_tokens + EXCLUDED.completion_tokens,
                        cost_usd = {t}.cost_usd + EXCLUDED.cost_usd, failed_at = now()
                    """
                ).format(t=_table(schema, "review_analysis_failures"), r=_table(schema, "review_analysis")),
                [
                    (
                        o.review_id,
                        version,
                        day,
                        model,
                        o.reason or "provider_error",
                        _clip(o.detail, DETAIL_LIMIT),
                        o.attempts,
                        o.http_status,
                        _clip(o.raw_reply, RAW_REPLY_LIMIT),
                        o.prompt_tokens,
                        o.completion_tokens,
                        o.cost_usd,
                        o.review_id,
                        version,
                    )
                    for o in failures
                ],
            )


def finished_review_ids(
    conn: psycopg.Connection, review_ids: Iterable[str], *, version: str, schema: str = "public"
) -> set[str]:
    """Reviews that need no new request for this version: analyzed, or failed for a final reason."""
    ids = list(review_ids)
    if not ids:
        return set()
    rows = conn.execute(
        sql.SQL(
            """
            SELECT review_id FROM {r} WHERE analysis_version = %s AND review_id = ANY(%s)
            UNION
            SELECT review_id FROM {f}
             WHERE analysis_version = %s AND review_id = ANY(%s) AND reason = ANY(%s)
            """
        ).format(r=_table(schema, "review_analysis"), f=_table(schema, "review_analysis_failures")),
        (version, ids, version, ids, sorted(FINAL_FAILURE_REASONS)),
    ).fetchall()
    return {row[0] for row in rows}


def outcome_counts(
    conn: psycopg.Connection, review_ids: Sequence[str], *, version: str, schema: str = "public"
) -> dict[str, int]:
    """How many rows (results plus failures) each review has for this version; reconciliation input."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT review_id, count(*) FROM (
                SELECT review_id FROM {r} WHERE analysis_version = %s AND review_id = ANY(%s)
                UNION ALL
                SELECT review_id FROM {f} WHERE analysis_version = %s AND review_id = ANY(%s)
            ) AS both_tables GROUP BY review_id
            """
        ).format(r=_table(schema, "review_analysis"), f=_table(schema, "review_analysis_failures")),
        (version, list(review_ids), version, list(review_ids)),
    ).fetchall()
    counts = dict.fromkeys(review_ids, 0)
    counts.update({row[0]: int(row[1]) for row in rows})
    return counts


def write_daily_summary(conn: psycopg.Connection, row: dict, *, schema: str = "public") -> None:
    """Replace the day's summary row for its analysis version."""
    columns = list(row)
    values = [json.dumps(v) if isinstance(v, dict) else v for v in row.values()]
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (day, analysis_version) "
                "DO UPDATE SET {updates}, computed_at = now()"
            ).format(
                t=_table(schema, "review_daily_summary"),
                cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
                vals=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                updates=sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                    for c in columns
                    if c not in ("day", "analysis_version")
                ),
            ),
            values,
        )
