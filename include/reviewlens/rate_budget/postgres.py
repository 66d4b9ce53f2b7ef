"""``PostgresBudget``: one rate budget per provider account for every chunk on every worker.

RPM/TPM belong to the account, not to a process, so the bucket lives in the warehouse in a row per
account key. A process takes a lease (about ``lease_s`` worth of the rate) in one short transaction:
``SELECT ... FOR UPDATE`` of the row, the shared bucket arithmetic of ``bucket.py`` on the database
clock, ``UPDATE``. The row lock serialises concurrent leases; the database clock
(``clock_timestamp()``) is the one clock all workers agree on. A 429's pause is written to the same
row so that other processes stop at their next lease.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg import sql

from reviewlens.errors import ConfigurationError
from reviewlens.rate_budget.base import RateBudget
from reviewlens.rate_budget.bucket import (
    DEFAULT_BURST_S,
    DEFAULT_SAFETY,
    BucketRow,
    Grant,
    Limits,
    grant,
    pause,
)

log = logging.getLogger(__name__)

DEFAULT_TABLE = "reviewlens_rate_budget"
DEFAULT_LEASE_S = 0.2
RECONNECT_WAIT_S = 0.5

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    account_key         text PRIMARY KEY,
    request_level       double precision NOT NULL DEFAULT 0,
    token_level         double precision NOT NULL DEFAULT 0,
    updated_at          double precision NOT NULL DEFAULT 0,  -- epoch s, database clock
    paused_until        double precision NOT NULL DEFAULT 0,  -- epoch s, database clock
    requests_per_minute double precision,                     -- last limits used (informational)
    tokens_per_minute   double precision,
    leases              bigint NOT NULL DEFAULT 0
)
"""
_ENSURE_ROW = "INSERT INTO {table} (account_key) VALUES (%s) ON CONFLICT (account_key) DO NOTHING"
_LOCK_ROW = """
SELECT request_level, token_level, updated_at, paused_until,
       extract(epoch FROM clock_timestamp())::double precision
FROM {table} WHERE account_key = %s FOR UPDATE
"""
_STORE_ROW = """
UPDATE {table} SET request_level = %s, token_level = %s, updated_at = %s, paused_until = %s,
                   requests_per_minute = %s, tokens_per_minute = %s, leases = leases + %s
WHERE account_key = %s
"""


class PostgresBudget(RateBudget):
    """The account's budget in a Postgres row, leased to processes a fraction of a second at a time."""

    def __init__(
        self,
        dsn: str,
        account_key: str,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        safety: float = DEFAULT_SAFETY,
        burst_s: float = DEFAULT_BURST_S,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        super().__init__(Limits(requests_per_minute, tokens_per_minute, safety, burst_s))
        self.lease_s = lease_s
        self._dsn = dsn
        self._key = account_key
        self._table = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        self._conn: psycopg.AsyncConnection | None = None
        self._ever_connected = False
        self._db_lock = asyncio.Lock()  # one statement sequence at a time on the one connection

    def __repr__(self) -> str:
        # Neither the DSN (may hold a password) nor the account key (names the provider) is shown.
        return f"PostgresBudget(limits={self.limits!r}, lease_s={self.lease_s})"

    async def _grant(self, want_requests: int, need_tokens: float, want_tokens: float) -> Grant:
        try:
            return await self._lease(want_requests, need_tokens, want_tokens)
        except psycopg.OperationalError as exc:
            if self._ever_connected:
                # A blip of the warehouse must not fail reviews: wait and lease again (reconnecting).
                log.warning("rate-budget database unavailable (%s); retrying the lease", type(exc).__name__)
                return Grant(0, 0.0, wait_s=RECONNECT_WAIT_S)
            raise

    async def _lease(self, want_requests: int, need_tokens: float, want_tokens: float) -> Grant:
        async with self._db_lock:
            conn = await self._connection()
            limits = self.limits
            async with conn.transaction():
                cursor = await conn.execute(self._sql(_LOCK_ROW), (self._key,))
                found = await cursor.fetchone()
                assert found is not None  # the row is created with the connection
                level_r, level_t, updated_at, paused_until, now = found
                row = BucketRow(level_r, level_t, updated_at, paused_until)
                row, granted = grant(
                    row,
                    now,
                    limits,
                    want_requests=want_requests,
                    need_tokens=need_tokens,
                    want_tokens=want_tokens,
                )
                await conn.execute(
                    self._sql(_STORE_ROW),
                    (
                        row.request_level,
                        row.token_level,
                        row.updated_at,
                        row.paused_until,
                        limits.requests_per_minute,
                        limits.tokens_per_minute,
                        1 if granted.requests else 0,
                        self._key,
                    ),
                )
        return granted

    async def _publish_pause(self, seconds: float, *, drain: bool) -> None:
        try:
            await self._write_pause(seconds, drain=drain)
        except psycopg.OperationalError as exc:
            # The local pause already holds this process; the others will get their own 429s.
            log.warning("could not share a pause through the database (%s)", type(exc).__name__)

    async def _write_pause(self, seconds: float, *, drain: bool) -> None:
        async with self._db_lock:
            conn = await self._connection()
            async with conn.transaction():
                cursor = await conn.execute(self._sql(_LOCK_ROW), (self._key,))
                found = await cursor.fetchone()
                assert found is not None
                level_r, level_t, updated_at, paused_until, now = found
                row = pause(BucketRow(level_r, level_t, updated_at, paused_until), now, seconds, drain=drain)
                await conn.execute(
                    self._sql(
                        "UPDATE {table} SET request_level = %s, token_level = %s, updated_at = %s,"
                        " paused_until = %s WHERE account_key = %s"
                    ),
                    (row.request_level, row.token_level, row.updated_at, row.paused_until, self._key),
                )

    async def aclose(self) -> None:
        await super().aclose()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _sql(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(table=self._table)  # type: ignore[arg-type]

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            # psycopg's message names host, port and user, never the password.
            raise ConfigurationError(f"cannot reach the rate-budget database: {exc}") from None
        try:
            await conn.execute(self._sql(_CREATE))
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            pass  # another process created it at the same moment
        await conn.execute(self._sql(_ENSURE_ROW), (self._key,))
        self._conn = conn
        self._ever_connected = True
        return conn
