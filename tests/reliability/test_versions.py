"""A prompt/model/taxonomy change re-analyzes under a new version and keeps the old rows as history."""

from __future__ import annotations

from dataclasses import replace

import psycopg

from reviewlens import pipeline
from reviewlens.taxonomy import load_taxonomy
from tests.reliability import harness as h


def test_a_model_change_reanalyzes_keeps_history_and_a_same_version_rerun_sends_nothing(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint(models=("reviewlens-sim-1", "reviewlens-sim-2"))
    h.seed(dsn, schema, [*h.sample(20), h.review("z-empty", "")])
    old = h.make_config(sim.base_url, key, schema, model="reviewlens-sim-1")
    new = h.make_config(sim.base_url, key, schema, model="reviewlens-sim-2")
    assert old.version != new.version

    h.run_day(dsn, old)
    before = h.assert_invariant(dsn, schema, old.version)
    h.run_day(dsn, new)
    after_new = h.assert_invariant(dsn, schema, new.version)
    assert len(after_new.analyzed) == 20 and len(sim.requests()) == 40, (
        "the new version analyzed every review"
    )
    assert h.assert_invariant(dsn, schema, old.version).analyzed == before.analyzed, "history was touched"

    # Both versions aggregate side by side; nothing mixes.
    with psycopg.connect(dsn, autocommit=True) as conn:
        for cfg in (old, new):
            row = pipeline.aggregate_day(conn, cfg, pipeline.interval_for_day(h.DAY))
            assert (row["reviews_total"], row["reviews_analyzed"], row["reviews_failed"]) == (21, 20, 1)
            assert row["model"] == cfg.llm.model

    # Same version again: finished reviews are never requested again.
    h.run_day(dsn, new)
    assert len(sim.requests()) == 40
    h.assert_invariant(dsn, schema, new.version)


def test_a_taxonomy_change_is_a_new_version(wh, endpoint, key):
    dsn, schema = wh
    sim = endpoint()
    h.seed(dsn, schema, h.sample(8))
    base = h.make_config(sim.base_url, key, schema)
    changed = replace(base, taxonomy=load_taxonomy(None, override=["quality", "price", "shipping", "other"]))
    assert changed.version != base.version
    h.run_day(dsn, base)
    h.run_day(dsn, changed)
    h.assert_invariant(dsn, schema, base.version)
    book = h.assert_invariant(dsn, schema, changed.version)
    allowed = {"quality", "price", "shipping", "other"}
    assert all(set(row["categories"]) <= allowed for row in book.analyzed.values())
