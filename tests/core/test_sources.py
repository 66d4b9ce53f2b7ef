"""Sources read only the interval, cut it into stable key-range chunks and check their setup."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from reviewlens.config import SourceSettings
from reviewlens.errors import ConfigurationError
from reviewlens.pipeline import interval_for_day
from reviewlens.sample_data import generate_reviews, seed_reviews
from reviewlens.sources import FileSource, PostgresTableSource

DAYS = [date(2026, 5, 1), date(2026, 5, 2)]


@pytest.fixture
def table_source(pg_conn, pg_schema):
    seed_reviews(pg_conn, list(generate_reviews(DAYS, [25, 10], seed=1)), schema=pg_schema)
    return PostgresTableSource(pg_conn, SourceSettings(schema=pg_schema))


def test_postgres_source_counts_only_the_interval(table_source):
    assert table_source.count(interval_for_day(DAYS[0])) == 25
    assert table_source.count(interval_for_day(DAYS[1])) == 10
    assert table_source.count(interval_for_day(date(2026, 5, 3))) == 0


def test_chunks_cover_every_review_once_by_stable_keys(table_source):
    interval = interval_for_day(DAYS[0])
    chunks = table_source.plan(interval, chunk_size=10)
    assert [c.size for c in chunks] == [10, 10, 5]
    ids = [r.review_id for c in chunks for r in table_source.read_chunk(c)]
    assert len(ids) == len(set(ids)) == 25
    assert table_source.plan(interval, chunk_size=10) == chunks


def test_chunk_descriptors_carry_no_review_text(table_source):
    chunk = table_source.plan(interval_for_day(DAYS[0]), chunk_size=100)[0]
    assert set(chunk.to_xcom()) == {
        "day",
        "interval_start",
        "interval_end",
        "index",
        "first_key",
        "last_key",
        "size",
    }
    assert len(json.dumps(chunk.to_xcom())) < 300


def test_missing_table_is_a_clear_configuration_error(pg_conn, pg_schema):
    source = PostgresTableSource(pg_conn, SourceSettings(schema=pg_schema, table="nope"))
    with pytest.raises(ConfigurationError, match=r"does not exist.*source_table"):
        source.check()


def test_missing_column_names_the_setting_to_fix(table_source, pg_conn, pg_schema):
    source = PostgresTableSource(pg_conn, SourceSettings(schema=pg_schema, text_column="review_text"))
    with pytest.raises(ConfigurationError, match=r"'review_text' \(SourceSettings\.text_column\)"):
        source.check()


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_file_sources_read_the_day_partition(tmp_path, kind):
    reviews = list(generate_reviews(DAYS, [7, 3], seed=2))
    df = pd.DataFrame(
        [
            {
                "review_id": r.review_id,
                "body": r.body,
                "product_id": r.product_id,
                "rating": r.rating,
                "created_at": r.created_at.isoformat(),
            }
            for r in reviews
        ]
    )
    path = tmp_path / f"reviews.{kind}"
    if kind == "csv":
        df.to_csv(path, index=False)
    elif kind == "parquet":
        df.to_parquet(path)
    else:
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    source = FileSource(SourceSettings(kind=kind, path=str(path)))
    source.check()
    chunks = source.plan(interval_for_day(DAYS[0]), chunk_size=5)
    got = [r for c in chunks for r in source.read_chunk(c)]
    assert [c.size for c in chunks] == [5, 2]
    assert {r.review_id for r in got} == {r.review_id for r in reviews[:7]}
    assert all(isinstance(r.rating, int) for r in got)


def test_invalid_utf8_in_a_csv_is_replaced_not_fatal(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"review_id,body,created_at\nr1,caf\xe9 ok,2026-05-01T10:00:00Z\nr2,fine,2026-05-01T11:00:00Z\n"
    )
    source = FileSource(SourceSettings(kind="csv", path=str(path)))
    chunk = source.plan(interval_for_day(DAYS[0]), chunk_size=10)[0]
    bodies = {r.review_id: r.body for r in source.read_chunk(chunk)}
    assert bodies == {"r1": "caf\ufffd ok", "r2": "fine"}


def test_file_source_without_a_path_says_which_param_to_set():
    with pytest.raises(ConfigurationError, match="source_path"):
        FileSource(SourceSettings(kind="csv"))
