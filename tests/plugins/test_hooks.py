"""Connections become settings, with clear errors for every malformed field and no key leaks."""

from __future__ import annotations

import json

import pytest

from reviewlens.errors import ConfigurationError
from reviewlens_airflow.hooks import ReviewLensLLMHook, WarehouseHook, llm_settings_from_connection

KEY = "sk-live-abcdefghijklmnop0123"


def settings(host="https://api.example.com/v1", extra=None, **kw):
    return llm_settings_from_connection(
        "reviewlens_llm",
        kw.get("conn_type", "http"),
        host,
        kw.get("port"),
        kw.get("schema"),
        KEY,
        extra or {},
    )


def test_host_is_the_base_url_and_password_the_key():
    s = settings(extra={"model": "gpt-4o-mini", "rpm": "5000", "tpm": 2_000_000, "reviews_per_request": 5})
    assert s.base_url == "https://api.example.com/v1"
    assert s.api_key.reveal() == KEY
    assert (s.model, s.requests_per_minute, s.tokens_per_minute, s.reviews_per_request) == (
        "gpt-4o-mini",
        5000,
        2_000_000,
        5,
    )


def test_uri_style_connection_is_assembled_into_a_base_url():
    s = settings(host="127.0.0.1", port=8099, schema="v1", conn_type="http")
    assert s.base_url == "http://127.0.0.1:8099/v1"


def test_the_key_never_shows_in_a_repr_of_the_settings():
    assert KEY not in repr(settings()) and KEY not in str(settings().api_key)


@pytest.mark.parametrize(
    ("host", "extra", "message"),
    [
        (None, {}, "has no host"),
        ("ftp://x/v1", {}, "not an http"),
        ("https://x/v1", {"modle": "gpt"}, "unknown extra key.*modle"),
        ("https://x/v1", {"rpm": "lots"}, "'rpm' = 'lots' is not a valid int"),
        ("https://x/v1", {"response_format": "xml"}, "response_format must be"),
    ],
)
def test_malformed_connections_say_what_to_fix(host, extra, message):
    with pytest.raises(ConfigurationError, match=message) as err:
        settings(host=host, extra=extra)
    assert KEY not in str(err.value)


def test_hook_reads_the_connection_from_the_environment(monkeypatch):
    conn = {"conn_type": "http", "host": "http://127.0.0.1:9/v1", "password": KEY, "extra": {"model": "m1"}}
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_LLM", json.dumps(conn))
    s = ReviewLensLLMHook().get_settings(reviews_per_request=4, response_format=None)
    assert (s.base_url, s.model, s.reviews_per_request, s.api_key.reveal()) == (
        "http://127.0.0.1:9/v1",
        "m1",
        4,
        KEY,
    )


def test_missing_llm_connection_explains_how_to_create_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_REVIEWLENS_LLM", raising=False)
    with pytest.raises(ConfigurationError, match="AIRFLOW_CONN_REVIEWLENS_LLM"):
        ReviewLensLLMHook().get_settings()


def test_warehouse_hook_gives_autocommit_psycopg3_connections(monkeypatch, pg_dsn):
    from scripts.airflow_env import warehouse_connection

    monkeypatch.setenv("AIRFLOW_CONN_REVIEWLENS_WAREHOUSE", warehouse_connection(pg_dsn))
    hook = WarehouseHook()
    with hook.connect() as conn:
        assert conn.autocommit is True
        assert conn.execute("SELECT current_database()").fetchone()[0] == pg_dsn.rsplit("/", 1)[1]
    import psycopg

    with psycopg.connect(hook.conninfo()) as direct:
        assert direct.execute("SELECT 1").fetchone() == (1,)
