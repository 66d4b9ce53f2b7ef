"""Hooks that turn Airflow connections into ReviewLens settings; nothing else reads a connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from reviewlens.config import LLMSettings, Secret
from reviewlens.errors import ConfigurationError

LLM_CONN_ID = "reviewlens_llm"
WAREHOUSE_CONN_ID = "reviewlens_warehouse"

# Connection extra keys and the LLMSettings field each one sets (short aliases accepted).
_EXTRA_FIELDS: dict[str, tuple[str, type]] = {
    "model": ("model", str),
    "rpm": ("requests_per_minute", int),
    "requests_per_minute": ("requests_per_minute", int),
    "tpm": ("tokens_per_minute", int),
    "tokens_per_minute": ("tokens_per_minute", int),
    "max_concurrency": ("max_concurrency", int),
    "timeout_s": ("timeout_s", float),
    "max_attempts": ("max_attempts", int),
    "review_deadline_s": ("review_deadline_s", float),
    "max_output_tokens": ("max_output_tokens", int),
    "temperature": ("temperature", float),
    "response_format": ("response_format", str),
    "reviews_per_request": ("reviews_per_request", int),
    "budget_key": ("budget_key", str),
}


def llm_settings_from_connection(
    conn_id: str,
    conn_type: str | None,
    host: str | None,
    port: int | None,
    schema: str | None,
    password: str | None,
    extra: dict[str, Any],
) -> LLMSettings:
    """Build LLMSettings from a connection's fields (separate from Airflow so it is easy to test)."""
    if not host:
        raise ConfigurationError(
            f"Connection {conn_id!r} has no host. Set host to the endpoint's base URL, e.g. "
            "https://api.openai.com/v1 or http://127.0.0.1:8099/v1."
        )
    if "://" in host:
        base_url = host
    else:
        scheme = conn_type if conn_type in ("http", "https") else "https"
        base_url = f"{scheme}://{host}" + (f":{port}" if port else "") + (f"/{schema}" if schema else "")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"Connection {conn_id!r} has base URL {base_url!r}, which is not an http(s) URL. "
            "Set host to e.g. https://api.openai.com/v1."
        )
    unknown = sorted(set(extra) - set(_EXTRA_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"Connection {conn_id!r} has unknown extra key(s) {unknown}; valid keys: {sorted(_EXTRA_FIELDS)}."
        )
    fields: dict[str, Any] = {}
    for key, value in extra.items():
        name, kind = _EXTRA_FIELDS[key]
        if value is None or value == "":
            continue
        try:
            fields[name] = kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"Connection {conn_id!r} extra {key!r} = {value!r} is not a valid {kind.__name__}."
            ) from None
    if fields.get("response_format", "auto") not in ("auto", "json_schema", "json_object", "none"):
        raise ConfigurationError(
            f"Connection {conn_id!r} extra response_format must be auto, json_schema, json_object or none."
        )
    return LLMSettings(base_url=base_url.rstrip("/"), api_key=Secret(password), **fields)


def _parse_extra(conn_id: str, raw: str | dict | None) -> dict[str, Any]:
    """The connection extra as a dict; Airflow's ``extra_dejson`` logs bad JSON and returns {} instead."""
    if isinstance(raw, dict):
        return raw
    if raw is None or not str(raw).strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"Connection {conn_id!r} has an extra that is not valid JSON ({exc.msg} at character {exc.pos}). "
            'Write it as a JSON object, e.g. {"model": "gpt-4o-mini", "rpm": 5000}.'
        ) from None
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"Connection {conn_id!r} has an extra that is JSON but not an object; write it as "
            '{"model": "gpt-4o-mini", ...}.'
        )
    return value


class ReviewLensLLMHook(BaseHook):
    """The endpoint connection: host = base URL, password = API key, extra = model and limits."""

    conn_name_attr = "llm_conn_id"
    default_conn_name = LLM_CONN_ID
    conn_type = "http"
    hook_name = "ReviewLens LLM endpoint"

    def __init__(self, llm_conn_id: str = LLM_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm_conn_id = llm_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login", "port", "schema"],
            "relabeling": {"host": "Base URL", "password": "API key"},
            "placeholders": {
                "host": "https://api.openai.com/v1",
                "extra": '{"model": "gpt-4o-mini", "rpm": 5000, "tpm": 2000000}',
            },
        }

    def get_settings(self, **overrides: Any) -> LLMSettings:
        """The connection as LLMSettings; the key is registered with Airflow's secret masker first."""
        try:
            conn = self.get_connection(self.llm_conn_id)
        except Exception as exc:  # Airflow raises its own not-found type, which differs by version
            raise ConfigurationError(
                f"Airflow connection {self.llm_conn_id!r} is missing or unreadable ({type(exc).__name__}). "
                f"Create it (Admin → Connections) or set AIRFLOW_CONN_{self.llm_conn_id.upper()} to JSON "
                "like "
                '{"conn_type": "http", "host": "https://api.openai.com/v1", "password": "<key>", '
                '"extra": {"model": "gpt-4o-mini"}}.'
            ) from None
        if conn.password:
            mask_secret(conn.password)
        extra = _parse_extra(self.llm_conn_id, conn.extra)
        settings = llm_settings_from_connection(
            self.llm_conn_id, conn.conn_type, conn.host, conn.port, conn.schema, conn.password, extra
        )
        return (
            settings.with_(**{k: v for k, v in overrides.items() if v is not None}) if overrides else settings
        )


class WarehouseHook(PostgresHook):
    """The warehouse: a PostgresHook whose connections are autocommit psycopg 3 connections."""

    default_conn_name = WAREHOUSE_CONN_ID
    hook_name = "ReviewLens warehouse"

    def __init__(self, postgres_conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(postgres_conn_id=postgres_conn_id, **kwargs)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        conn = self.get_conn()
        conn.autocommit = True  # the core opens explicit transactions where it needs them
        try:
            yield conn
        finally:
            conn.close()

    def conninfo(self) -> str:
        """A libpq connection string for the core's own connections (the shared rate budget)."""
        c = self.get_connection(self.postgres_conn_id)
        if c.password:
            mask_secret(c.password)
        return psycopg.conninfo.make_conninfo(
            host=c.host or "127.0.0.1",
            port=c.port or 5432,
            user=c.login or None,
            password=c.password or None,
            dbname=c.schema or None,
        )
