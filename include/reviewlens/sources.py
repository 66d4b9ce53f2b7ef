"""Where the reviews of one data interval come from, and how they are cut into chunks.

Only the interval ``[start, end)`` is ever read — never the whole history. Chunks are ranges of the
stable review key, so a chunk read again (a retry, a re-run) holds exactly the same reviews.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import psycopg
from psycopg import sql

from reviewlens.config import SourceSettings
from reviewlens.errors import ConfigurationError
from reviewlens.models import ChunkSpec, Review


@dataclass(frozen=True)
class Interval:
    """A half-open data interval ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def day(self) -> str:
        return self.start.date().isoformat()


class ReviewSource(Protocol):
    """What the pipeline needs from a source of reviews."""

    def check(self) -> None: ...
    def count(self, interval: Interval) -> int: ...
    def plan(self, interval: Interval, chunk_size: int) -> list[ChunkSpec]: ...
    def read_chunk(self, chunk: ChunkSpec) -> list[Review]: ...


def _specs(interval: Interval, bounds: Sequence[tuple[str, str, int]]) -> list[ChunkSpec]:
    return [
        ChunkSpec(
            day=interval.day,
            interval_start=interval.start.isoformat(),
            interval_end=interval.end.isoformat(),
            index=i,
            first_key=first,
            last_key=last,
            size=size,
        )
        for i, (first, last, size) in enumerate(bounds)
    ]


class PostgresTableSource:
    """Reviews in a PostgreSQL table with configurable table and column names."""

    def __init__(self, conn: psycopg.Connection, settings: SourceSettings) -> None:
        self.conn = conn
        self.s = settings
        self._table = sql.SQL("{}.{}").format(sql.Identifier(settings.schema), sql.Identifier(settings.table))

    def _col(self, name: str) -> sql.Identifier:
        return sql.Identifier(name)

    def check(self) -> None:
        """Fail before any spend if the table or a required column is missing."""
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (self.s.schema, self.s.table),
        ).fetchall()
        if not rows:
            raise ConfigurationError(
                f"Source table {self.s.schema}.{self.s.table} does not exist in the warehouse database. "
                "Create it, or set the `source_table` Param / SourceSettings.table to the table that "
                "holds your reviews."
            )
        have = {r[0] for r in rows}
        required = {
            "id_column": self.s.id_column,
            "text_column": self.s.text_column,
            "time_column": self.s.time_column,
        }
        missing = {k: v for k, v in required.items() if v not in have}
        if missing:
            raise ConfigurationError(
                f"Source table {self.s.schema}.{self.s.table} has no column(s) "
                + ", ".join(f"{v!r} (SourceSettings.{k})" for k, v in missing.items())
                + f"; it has {sorted(have)}. Map the columns in the source settings."
            )

    def _where(self, interval: Interval) -> tuple[sql.Composed, list]:
        return (
            sql.SQL("{t} >= %s AND {t} < %s").format(t=self._col(self.s.time_column)),
            [interval.start, interval.end],
        )

    def count(self, interval: Interval) -> int:
        where, params = self._where(interval)
        query = sql.SQL("SELECT count(*) FROM {tbl} WHERE {w}").format(tbl=self._table, w=where)
        return int(self.conn.execute(query, params).fetchone()[0])

    def plan(self, interval: Interval, chunk_size: int) -> list[ChunkSpec]:
        where, params = self._where(interval)
        query = sql.SQL(
            """
            SELECT min(k), max(k), count(*) FROM (
                SELECT {id}::text AS k, (row_number() OVER (ORDER BY {id}::text) - 1) / %s AS chunk
                FROM {tbl} WHERE {w}
            ) AS keyed GROUP BY chunk ORDER BY chunk
            """
        ).format(id=self._col(self.s.id_column), tbl=self._table, w=where)
        rows = self.conn.execute(query, [chunk_size, *params]).fetchall()
        return _specs(interval, [(r[0], r[1], int(r[2])) for r in rows])

    def read_chunk(self, chunk: ChunkSpec) -> list[Review]:
        interval = Interval(
            datetime.fromisoformat(chunk.interval_start), datetime.fromisoformat(chunk.interval_end)
        )
        where, params = self._where(interval)

        def optional(name: str) -> sql.Composable:
            return self._col(name) if name else sql.SQL("NULL")

        query = sql.SQL(
            """
            SELECT {id}::text, {body}, {product}::text, {rating}, {ts} FROM {tbl}
             WHERE {w} AND {id}::text >= %s AND {id}::text <= %s ORDER BY {id}::text
            """
        ).format(
            id=self._col(self.s.id_column),
            body=self._col(self.s.text_column),
            product=optional(self.s.product_column),
            rating=optional(self.s.rating_column),
            ts=self._col(self.s.time_column),
            tbl=self._table,
            w=where,
        )
        rows = self.conn.execute(query, [*params, chunk.first_key, chunk.last_key]).fetchall()
        return [
            Review(
                review_id=r[0],
                body=r[1] if r[1] is not None else "",
                product_id=r[2],
                rating=int(r[3]) if r[3] is not None else None,
                created_at=r[4],
            )
            for r in rows
        ]


class FileSource:
    """Reviews in CSV, Parquet or JSON Lines files.

    ``settings.path`` is a file, a directory or a glob, and may contain ``{ds}`` (the interval's
    day, YYYY-MM-DD) so a daily partition is the only thing read. Undecodable bytes are replaced
    (U+FFFD) rather than failing the day; the review then goes through the normal text checks.
    """

    def __init__(self, settings: SourceSettings) -> None:
        if not settings.path:
            raise ConfigurationError(
                f"A {settings.kind} source needs a path (a file, directory or glob, optionally with "
                "{ds}); set the `source_path` Param."
            )
        self.s = settings

    def _files(self, interval: Interval) -> list[str]:
        pattern = self.s.path.replace("{ds}", interval.day)  # type: ignore[union-attr]
        if os.path.isdir(pattern):
            suffix = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}[self.s.kind]
            pattern = os.path.join(pattern, f"*{suffix}")
        return sorted(glob.glob(pattern))

    def check(self) -> None:
        if "{ds}" not in self.s.path and not glob.glob(self.s.path):  # type: ignore[arg-type]
            raise ConfigurationError(f"No {self.s.kind} file matches source path {self.s.path!r}.")

    def _frame(self, interval: Interval):
        import pandas as pd

        files = self._files(interval)
        if not files:
            return pd.DataFrame(columns=[self.s.id_column, self.s.text_column, self.s.time_column])
        frames = []
        for f in files:
            if self.s.kind == "csv":
                frames.append(pd.read_csv(f, dtype=str, keep_default_na=False, encoding_errors="replace"))
            elif self.s.kind == "jsonl":
                frames.append(pd.read_json(f, lines=True, dtype=False, encoding_errors="replace"))
            else:
                frames.append(pd.read_parquet(f))
        df = pd.concat(frames, ignore_index=True)
        for col in (self.s.id_column, self.s.text_column, self.s.time_column):
            if col not in df.columns:
                raise ConfigurationError(
                    f"Source files {files[:3]} have no column {col!r}; they have {list(df.columns)}. "
                    "Map the columns in the source settings."
                )
        ts = pd.to_datetime(df[self.s.time_column], utc=True, errors="coerce")
        df = df.assign(_ts=ts, _key=df[self.s.id_column].astype(str))
        df = df[(df["_ts"] >= interval.start) & (df["_ts"] < interval.end)]
        return df.sort_values("_key", kind="stable").drop_duplicates("_key", keep="last")

    def count(self, interval: Interval) -> int:
        return len(self._frame(interval))

    def plan(self, interval: Interval, chunk_size: int) -> list[ChunkSpec]:
        keys = list(self._frame(interval)["_key"])
        bounds = [
            (keys[i], keys[min(i + chunk_size, len(keys)) - 1], len(keys[i : i + chunk_size]))
            for i in range(0, len(keys), chunk_size)
        ]
        return _specs(interval, bounds)

    def read_chunk(self, chunk: ChunkSpec) -> list[Review]:
        interval = Interval(
            datetime.fromisoformat(chunk.interval_start), datetime.fromisoformat(chunk.interval_end)
        )
        df = self._frame(interval)
        df = df[(df["_key"] >= chunk.first_key) & (df["_key"] <= chunk.last_key)]

        def get(row, col):
            value = row.get(col) if col else None
            return None if value is None or value != value or value == "" else value

        return [
            Review(
                review_id=row["_key"],
                body=str(get(row, self.s.text_column) or ""),
                product_id=None
                if get(row, self.s.product_column) is None
                else str(get(row, self.s.product_column)),
                rating=None
                if get(row, self.s.rating_column) is None
                else int(float(get(row, self.s.rating_column))),
                created_at=row["_ts"].to_pydatetime(),
            )
            for row in df.to_dict("records")
        ]


def open_source(settings: SourceSettings, conn: psycopg.Connection | None) -> ReviewSource:
    """The source the settings describe."""
    if settings.kind == "postgres":
        if conn is None:
            raise ConfigurationError("A postgres source needs a warehouse connection.")
        return PostgresTableSource(conn, settings)
    if settings.kind in ("csv", "parquet", "jsonl"):
        return FileSource(settings)
    raise ConfigurationError(f"Unknown source kind {settings.kind!r}; use postgres, csv, parquet or jsonl.")
