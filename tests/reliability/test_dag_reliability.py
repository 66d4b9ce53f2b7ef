"""The real DAG (dag.test, in-process) under faults, with bad configuration, and with secrets to keep.

Connections come from AIRFLOW_CONN_* variables as in a deployment; the warehouse is a fresh database.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from reviewlens.config import SourceSettings
from reviewlens.errors import AuthenticationFailed
from reviewlens.sample_data import generate_reviews, seed_reviews
from reviewlens.simulator import FAULT_KINDS
from scripts.airflow_env import llm_connection, warehouse_connection
from tests.reliability import harness as h

pytestmark = pytest.mark.e2e

DAY = date(2026, 10, 7)
FAST = {"timeout_s": 0.4, "max_attempts": 3, "review_deadline_s": 15}


@pytest.fixture
def deploy(pg_database, monkeypatch, airflow_db, endpoint, key):
    """Seed a day of reviews (10 % hostile) and point both connections at it and at a new endpoint."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        seed_reviews(conn, list(generate_reviews([DAY], 60, seed=21, hostile_share=0.1)))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_WAREHOUSE", warehouse_connection(pg_database))

    def start(faults=None, *, api_key=key, base_url=None, raw_llm=None, **extra):
        sim = endpoint(faults)
        conn = raw_llm or llm_connection(base_url or sim.base_url, api_key, **{**FAST, **extra})
        monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_LLM", conn)
        return sim

    return pg_database, start


def run_dag(**params):
    from review_sentiment_daily import review_sentiment_daily_dag as dag

    logical = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=1)
    from reviewlens_airflow.params import PARAMS

    # Every Param explicitly: in-process dag.test runs share the DAG object, and a Param set by one
    # run's conf was seen to stick to the next run's context (observed with Airflow 3.3 dag.test).
    defaults = {name: param.value for name, param in PARAMS.items()}
    conf = {**defaults, "day": DAY.isoformat(), "chunk_size": 20, **params}
    run = dag.test(logical_date=logical, run_conf=conf)
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    return run, states


def versions(db: str) -> list[str]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT analysis_version FROM review_analysis "
            "UNION SELECT analysis_version FROM review_analysis_failures"
        ).fetchall()
    return [r[0] for r in rows]


def test_the_dag_completes_a_day_with_all_faults_mixed_at_twenty_percent(deploy):
    db, start = deploy
    sim = start({**dict.fromkeys(FAULT_KINDS, 0.2 / len(FAULT_KINDS)), "hang_s": 1.5, "retry_after_s": 0.02})
    run, states = run_dag(reviews_per_request=5)
    assert run.state == "success", states
    (version,) = versions(db)
    book = h.assert_invariant(db, "public", version, DAY)
    log = sim.requests()
    assert any(e["fault"] for e in log)
    assert len(book.analyzed) >= 50, book.reasons()
    with psycopg.connect(db) as conn:
        summary = conn.execute(
            "SELECT reviews_total, reviews_analyzed, reviews_failed FROM review_daily_summary WHERE day = %s",
            (DAY,),
        ).fetchone()
    assert summary == (60, len(book.analyzed), len(book.failed))


# --- bad configuration fails in check_setup, before any chat request --------------------------------


def _no_table(db):
    return {"source_table": "no_such_table"}


def _wrong_columns(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE odd_reviews (id text, txt text, created_at timestamptz)")
    return {"source_table": "odd_reviews"}


CASES = {
    # name: (connection changes, Param changes, words the message must contain)
    "wrong key": ({"api_key": "sk-wrong-but-plausible-123"}, None, ["rejected the API key", "password"]),
    "unknown model": ({"model": "gpt-imaginary"}, None, ["gpt-imaginary", "not served", "reviewlens-sim-1"]),
    "wrong base URL": ({"path": "/nope"}, None, ["/nope", "OpenAI-compatible", "/v1"]),
    "nothing listening": ({"base_url": "http://127.0.0.1:9/v1"}, None, ["Cannot reach", "127.0.0.1:9"]),
    "no host": (
        {"raw_llm": json.dumps({"conn_type": "http", "password": "k"})},
        None,
        ["no host", "base URL"],
    ),
    "extra not JSON": (
        {"raw_llm": json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9/v1", "extra": "{oops"})},
        None,
        ["extra", "JSON"],
    ),
    "unknown extra key": ({"modle": "x"}, None, ["unknown extra key", "modle"]),
    "missing source table": ({}, _no_table, ["no_such_table", "does not exist", "source_table"]),
    "missing source column": ({}, _wrong_columns, ["odd_reviews", "review_id", "body", "Map the columns"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_configuration_fails_check_setup_with_a_useful_message_and_no_spend(deploy, case, key):
    from airflow.sdk.exceptions import AirflowFailException

    from reviewlens_airflow import tasks

    db, start = deploy
    conn_changes, params_of, words = CASES[case]
    conn_changes = dict(conn_changes)
    path = conn_changes.pop("path", None)
    sim = start(**conn_changes) if not path else None
    if path:
        sim = start()
        start_url = sim.base_url.removesuffix("/v1") + path
        from scripts.airflow_env import llm_connection as make

        os.environ["AIRFLOW_CONN_REVIEWLENS_LLM"] = make(start_url, key, **FAST)
    params = params_of(db) if params_of else {}

    with pytest.raises(AirflowFailException) as caught:
        tasks.check_setup({"params": params})
    message = str(caught.value)
    for word in words:
        assert word in message, f"{case}: {word!r} not in {message!r}"
    assert "sk-wrong" not in message and key not in message
    assert sim.requests() == [], "a chat completion was sent despite the bad configuration"


@pytest.mark.parametrize("case", ["wrong key", "missing source table"])
def test_a_dag_run_with_bad_configuration_fails_at_check_setup_without_retries_or_spend(deploy, case):
    db, start = deploy
    conn_changes, params_of, _ = CASES[case]
    sim = start(**conn_changes)
    run, states = run_dag(**(params_of(db) if params_of else {}))
    assert run.state == "failed"
    assert states[("check_setup", -1)] == "failed", states
    assert states.get(("analyze_chunk", -1)) in ("upstream_failed", None), states
    assert sim.requests() == []


# --- secrets ------------------------------------------------------------------------------------------


def _airflow_text() -> str:
    home = Path(os.environ["AIRFLOW_HOME"])
    parts = []
    for path in home.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    db = home / "airflow.db"
    with sqlite3.connect(db) as conn:
        parts.extend(conn.iterdump())
    parts.append(db.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def _warehouse_text(db: str) -> str:
    with psycopg.connect(db) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        return "\n".join(
            str(row)
            for schema, table in tables
            for row in conn.execute(
                sql.SQL("SELECT t::text FROM {}.{} AS t").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            ).fetchall()
        )


def test_the_api_key_appears_in_no_log_xcom_table_request_log_or_error(deploy, key, caplog, capfd):
    db, start = deploy
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-5d1e8f0a9b2c"
    sim = start({"server_error": 0.1, "not_json": 0.1, "retry_after_s": 0.02})
    run, states = run_dag(reviews_per_request=5)
    assert run.state == "success", states

    # A key rejected mid-run (the chunk records auth_failed), and one rejected at check_setup.
    errors = []
    cfg = h.make_config(sim.base_url, wrong, "public", source=SourceSettings(), chunk_size=100)
    with pytest.raises(AuthenticationFailed) as caught:
        h.run_day(db, cfg, DAY)
    errors.append(str(caught.value))
    start(api_key=wrong)
    run, states = run_dag()
    assert run.state == "failed"

    out, err = capfd.readouterr()
    places = {
        "captured logs": caplog.text,
        "stdout/stderr": out + err,
        "Airflow home (task logs, metadata DB incl. XCom)": _airflow_text(),
        "warehouse tables": _warehouse_text(db),
        "endpoint request log": json.dumps([sim.requests(), sim.config(), sim.stats()]),
        "error messages": "\n".join(errors),
    }
    # The places searched really hold this run's traces (so "not found" means something).
    assert "auth_failed" in places["warehouse tables"]
    assert (
        "analysis_version" in places["Airflow home (task logs, metadata DB incl. XCom)"]
    )  # check_setup's XCom
    assert "Setup OK" in places["captured logs"] + places["stdout/stderr"]
    assert "rejected the API key" in places["captured logs"] + places["stdout/stderr"]
    for where, text in places.items():
        assert key not in text, f"the API key leaked into {where}"
        assert wrong not in text, f"the wrong API key leaked into {where}"
