"""``PostgresBudget``: one rate budget per provider account for every chunk on every worker.

RPM/TPM belong to the account, not to a process, so the account's schedule (``bucket.py``) lives in
the warehouse in a row per account key. A process leases the next ``lease_s`` of the timelines in
**one statement**: an ``UPDATE … RETURNING`` that moves the row's free instants on, computed on the
database clock (``clock_timestamp()``), the one clock all workers agree on. The row lock the
``UPDATE`` takes serialises concurrent leases; no lease ever waits or fails, it may only lie in the
future. A 429's pause is written to the same row so that other processes' next leases start after it.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg import sql

from reviewlens.errors import ConfigurationError
from reviewlens.rate_budget.base import RateBudget
from reviewlens.rate_budget.bucket import DEFAULT_BURST_S, DEFAULT_SAFETY, Lease, Limits

log = logging.getLogger(__name__)

DEFAULT_TABLE = "reviewlens_rate_budget"
DEFAULT_LEASE_S = 0.2

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    account_key         text PRIMARY KEY,
    request_tat         double precision NOT NULL DEFAULT 0,  -- epoch s (database clock): first
    token_tat           double precision NOT NULL DEFAULT 0,  -- instant of the timeline not leased
    paused_until        double precision NOT NULL DEFAULT 0,  -- epoch s (database clock)
    requests_per_minute double precision,                     -- last limits used (informational)
    tokens_per_minute   double precision,
    leases              bigint NOT NULL DEFAULT 0
)
"""
# A table made by an earlier version (token buckets) gets the schedule's columns.
_UPGRADE = """
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS request_tat double precision NOT NULL DEFAULT 0,
                    ADD COLUMN IF NOT EXISTS token_tat double precision NOT NULL DEFAULT 0
"""
_ENSURE_ROW = "INSERT INTO {table} (account_key) VALUES (%(key)s) ON CONFLICT (account_key) DO NOTHING"
# bucket.take_lease in SQL; SET expressions read the row as it is once the UPDATE holds its lock.
_LEASE = """
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS now)
UPDATE {table} AS b SET
    request_tat = CASE WHEN %(rs)s > 0
        THEN greatest(b.request_tat, clock.now - %(burst)s, b.paused_until) + %(rs)s
        ELSE b.request_tat END,
    token_tat = CASE WHEN %(ts)s > 0
        THEN greatest(b.token_tat, clock.now - %(burst)s, b.paused_until) + %(ts)s
        ELSE b.token_tat END,
    requests_per_minute = %(rpm)s, tokens_per_minute = %(tpm)s, leases = b.leases + 1
FROM clock WHERE b.account_key = %(key)s
RETURNING clock.now, b.request_tat, b.token_tat, b.paused_until
"""
_PAUSE = """
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS now)
UPDATE {table} AS b SET paused_until = greatest(b.paused_until, clock.now + %(seconds)s)
FROM clock WHERE b.account_key = %(key)s
"""
# bucket.give_back: only if nobody leased after our stretch.
_GIVE_BACK = """
UPDATE {table} SET
    request_tat = CASE WHEN %(rf)s < %(re)s AND abs(request_tat - %(re)s) < 1e-6 THEN %(rf)s
                       ELSE request_tat END,
    token_tat = CASE WHEN %(tf)s < %(te)s AND abs(token_tat - %(te)s) < 1e-6 THEN %(tf)s
                     ELSE token_tat END
WHERE account_key = %(key)s
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
        super().__init__(Limits(requests_per_minute, tokens_per_minute, safety, burst_s), lease_s=lease_s)
        self._dsn = dsn
        self._key = account_key
        self._table = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        self._conn: psycopg.AsyncConnection | None = None
        self._ever_connected = False
        self._statements: dict[str, sql.Composed] = {}
        self._db_lock = asyncio.Lock()  # one statement sequence at a time on the one connection

    def __repr__(self) -> str:
        # Neither the DSN (may hold a password) nor the account key (names the provider) is shown.
        return f"PostgresBudget(limits={self.limits!r}, lease_s={self.lease_s})"

    async def _take(self, request_span_s: float, token_span_s: float) -> Lease | None:
        limits = self.limits
        params = {
            "rs": request_span_s,
            "ts": token_span_s,
            "burst": limits.burst_s,
            "rpm": limits.requests_per_minute,
            "tpm": limits.tokens_per_minute,
            "key": self._key,
        }
        try:
            async with self._db_lock:
                conn = await self._connection()
                cursor = await conn.execute(self._sql(_LEASE), params)
                row = await cursor.fetchone()
        except (psycopg.OperationalError, ConfigurationError) as exc:
            self._drop_connection()
            if self._ever_connected:
                # A blip of the warehouse must not fail reviews: wait and lease again (reconnecting).
                log.warning("rate-budget database unavailable (%s); retrying the lease", type(exc).__name__)
                return None
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"cannot reach the rate-budget database: {exc}") from None
        assert row is not None  # the row is created with the connection
        now, request_tat, token_tat, paused_until = row
        earliest = max(now - limits.burst_s, paused_until)
        return Lease(
            now=now,
            request_start=request_tat - request_span_s if request_span_s > 0 else earliest,
            request_span_s=request_span_s,
            token_start=token_tat - token_span_s if token_span_s > 0 else earliest,
            token_span_s=token_span_s,
            paused_until=paused_until,
        )

    async def _publish_pause(self, seconds: float) -> None:
        try:
            async with self._db_lock:
                conn = await self._connection()
                await conn.execute(self._sql(_PAUSE), {"seconds": seconds, "key": self._key})
        except (psycopg.OperationalError, ConfigurationError) as exc:
            # The local pause already holds this process; the others will get their own 429s.
            self._drop_connection()
            log.warning("could not share a pause through the database (%s)", type(exc).__name__)

    async def _give_back(
        self, request_from: float, request_end: float, token_from: float, token_end: float
    ) -> None:
        if self._conn is None or self._conn.closed:
            return
        params = {"rf": request_from, "re": request_end, "tf": token_from, "te": token_end, "key": self._key}
        async with self._db_lock:
            await self._conn.execute(self._sql(_GIVE_BACK), params)

    async def aclose(self) -> None:
        await super().aclose()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            self._spawn(conn.close())

    def _sql(self, template: str) -> sql.Composed:
        composed = self._statements.get(template)
        if composed is None:  # composed once: a lease is on the hot path
            composed = self._statements[template] = sql.SQL(template).format(table=self._table)  # type: ignore[arg-type]
        return composed

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            # psycopg's message names host, port and user, never the password.
            raise ConfigurationError(f"cannot reach the rate-budget database: {exc}") from None
        for statement in (_CREATE, _UPGRADE):
            try:
                await conn.execute(self._sql(statement))
            except (
                psycopg.errors.UniqueViolation,
                psycopg.errors.DuplicateTable,
                psycopg.errors.DuplicateColumn,
            ):
                pass  # another process created it at the same moment
        await conn.execute(self._sql(_ENSURE_ROW), {"key": self._key})
        self._conn = conn
        self._ever_connected = True
        return conn
