"""`make demo`: run review_sentiment_daily end to end for three days on embedded defaults.

Finds or starts PostgreSQL, seeds sample reviews over three days, starts the local
OpenAI-compatible endpoint, runs the DAG once per day with `airflow dags test`, and prints the three
`review_daily_summary` rows. Running it again prints the same numbers (seeding and loads are idempotent).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "include"), str(REPO)]

import psycopg  # noqa: E402

from reviewlens.pricing import load_prices  # noqa: E402
from reviewlens.sample_data import generate_reviews, seed_reviews  # noqa: E402
from reviewlens.simulator import SimulatorConfig, start_process  # noqa: E402
from scripts.airflow_env import airflow_env  # noqa: E402
from scripts.embedded_postgres import ensure_database, find_or_start  # noqa: E402
from scripts.setup_airflow import run_airflow  # noqa: E402
from scripts.setup_airflow import setup as setup_airflow  # noqa: E402

DEMO_DIR = REPO / ".demo"
DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
PER_DAY = [140, 120, 160]


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def print_summary(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """
            SELECT s.day, s.reviews_total, s.reviews_analyzed, s.reviews_failed, s.positive, s.neutral,
                   s.negative, s.prompt_tokens, s.completion_tokens, s.cost_usd, s.latency_p50_ms,
                   s.latency_p95_ms, s.analysis_version,
                   (SELECT string_agg(key || '=' || value, ' ' ORDER BY value::int DESC, key)
                      FROM (SELECT * FROM jsonb_each_text(s.category_counts) LIMIT 100) c) AS categories
              FROM review_daily_summary s
             WHERE s.day = ANY(%s)
               AND s.computed_at = (SELECT max(computed_at) FROM review_daily_summary t WHERE t.day = s.day)
             ORDER BY s.day
            """,
            (DAYS,),
        ).fetchall()
    header = [
        "day",
        "total",
        "analyzed",
        "failed",
        "pos",
        "neu",
        "neg",
        "tok_in",
        "tok_out",
        "cost_usd",
        "p50_ms",
        "p95_ms",
        "version",
    ]
    table = [
        [str(r[0]), *map(str, r[1:9]), f"{float(r[9]):.4f}", f"{r[10]:.0f}", f"{r[11]:.0f}", r[12]]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    print("\nreview_daily_summary\n" + line + "\n" + "-" * len(line))
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print()
    for r in rows:
        top = " ".join((r[13] or "").split()[:6])
        print(f"{r[0]} top categories: {top}")
    prices = load_prices(None)
    for model in ("gpt-4o-mini", "gpt-4.1-mini"):
        usd = sum(prices.cost(model, int(r[7]), int(r[8])) for r in rows)
        print(f"The same tokens at {model} list prices (data/prices.yaml): ${usd:.4f} for the three days.")
    total = sum(r[1] for r in rows)
    accounted = sum(r[2] + r[3] for r in rows)
    print(f"\n{accounted} of {total} seeded reviews accounted for (analyzed + failed).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-median-ms", type=float, default=150)
    parser.add_argument("--latency-p95-ms", type=float, default=600)
    parser.add_argument("--rpm", type=int, default=6000)
    args = parser.parse_args()
    started = time.monotonic()

    server = find_or_start(DEMO_DIR)
    say(f"PostgreSQL: {server.how}")
    db_url = ensure_database(server, "reviewlens_demo")

    reviews = list(generate_reviews(DAYS, PER_DAY, seed=2026))
    with psycopg.connect(db_url, autocommit=True) as conn:
        added = seed_reviews(conn, reviews)
    say(f"Seeded {len(reviews)} sample reviews over {DAYS[0]} .. {DAYS[-1]} ({added} new rows)")

    api_key = "sk-demo-" + secrets.token_hex(12)
    sim_config = SimulatorConfig(
        api_key=api_key,
        latency_median_ms=args.latency_median_ms,
        latency_p95_ms=args.latency_p95_ms,
        rpm=args.rpm,
        seed=2026,
    )
    with start_process(sim_config) as sim:
        say(f"Local OpenAI-compatible endpoint (a lexicon analyzer, not an LLM) at {sim.base_url}")
        env = airflow_env(
            DEMO_DIR / "airflow",
            warehouse_url=db_url,
            llm_base_url=sim.base_url,
            api_key=api_key,
            rpm=args.rpm,
        )
        say("Preparing Airflow metadata (SQLite) and the llm_provider pool")
        setup_airflow(env)
        for day in DAYS:
            t0 = time.monotonic()
            run_airflow(
                env,
                "dags",
                "test",
                "review_sentiment_daily",
                (day + timedelta(days=1)).isoformat(),
                "-c",
                f'{{"day": "{day.isoformat()}"}}',
            )
            say(f"DAG run for {day} succeeded in {time.monotonic() - t0:.1f}s")
        stats = sim.stats()
    requests = stats.get("requests")
    proofs = len(DAYS)  # check_setup proves the endpoint once per DAG run, before any chunk
    say(
        f"Endpoint served {requests if requests is not None else '?'} request(s): {proofs} of them "
        "check_setup's one-request endpoint proof per DAG run, the rest analysis (none on a re-run: "
        "every review already has its result)"
    )
    print_summary(db_url)
    say(f"Done in {time.monotonic() - started:.1f}s. Run `make demo` again: the numbers stay the same.")


if __name__ == "__main__":
    main()
