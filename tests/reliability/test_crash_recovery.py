"""A chunk SIGKILLed mid-flight and run again: nothing lost, nothing twice, little paid twice.

The chunk runs in a subprocess (``crash_worker``) against the endpoint in its own process
(``start_process``, with latency and 5 % server errors) and the real warehouse. Once checkpoints have
landed and half the reviews are answered, the worker is SIGKILLed; then it runs again to completion.

The endpoint's request log carries the per-request aliases the analyzer sends ("1"), not the source
ids, so each review is recognised by its fingerprint in the log: every review's text has a different
prompt-token count, and a K = 1 request's ``prompt_tokens`` names the review it carried. The constant
part (system message, framing) is calibrated with one review of the previous day run first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from reviewlens.pipeline import PipelineConfig
from reviewlens.prompts import prepare_review_text, reviews_block
from reviewlens.simulator import FaultConfig, SimulatorConfig, start_process
from reviewlens.tokens import count_tokens
from tests.reliability import harness as h

ROOT = Path(__file__).resolve().parents[2]
N = 300
KILL_AT_ANSWERS = N // 2
BASE = "The headphones sound great and the battery lasts all week"
FIGURES_FILE = Path(os.environ.get("REVIEWLENS_RELIABILITY_FIGURES", "/tmp/reviewlens-crash-figures.json"))


def reviews() -> list:
    # Review i carries i extra words, so no two reviews cost the same number of prompt tokens.
    return [h.review(f"c-{i:04d}", f"{BASE}{' really' * i}.", second=i) for i in range(N)]


def fenced_tokens(body: str) -> int:
    """Tokens of the one part of a K = 1 request that depends on the review: the fenced text."""
    text, _ = prepare_review_text(body, 8000)
    return count_tokens(reviews_block([("1", text)]))


def fingerprints(items: list, offset: int) -> dict[int, str]:
    by_tokens: dict[int, str] = {}
    for r in items:
        tokens = fenced_tokens(r.body) + offset
        assert tokens not in by_tokens, "two reviews share a fingerprint"
        by_tokens[tokens] = r.review_id
    return by_tokens


def rows(dsn: str, schema: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ok = {
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT review_id FROM {}.review_analysis").format(sql.Identifier(schema))
            ).fetchall()
        }
        failed = {
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT review_id FROM {}.review_analysis_failures").format(sql.Identifier(schema))
            ).fetchall()
        }
    return ok, failed


def count_rows(dsn: str, schema: str) -> int:
    ok, failed = rows(dsn, schema)
    return len(ok) + len(failed)


def start_worker(dsn: str, schema: str, base_url: str, key: str, day=h.DAY) -> subprocess.Popen:
    env = {
        **os.environ,
        "REVIEWLENS_TEST_KEY": key,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_worker", dsn, schema, base_url, day.isoformat()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_chunk_killed_mid_flight_and_run_again_loses_nothing_and_repays_only_the_unsaved(wh, key):
    dsn, schema = wh
    items = reviews()
    calibration = h.review(
        "cal-0", "Calibration review, the blender works fine.", day=h.DAY - timedelta(days=1)
    )
    h.seed(dsn, schema, [*items, calibration])
    faults = FaultConfig.of(server_error=0.05)
    config = SimulatorConfig(api_key=key, latency_median_ms=150, latency_p95_ms=400, seed=5, faults=faults)
    with start_process(config.__class__(**{**config.__dict__, "faults": FaultConfig()})) as sim:
        worker = start_worker(dsn, schema, sim.base_url, key, day=calibration.created_at.date())
        assert worker.wait(60) == 0, worker.stderr.read()
        worker.stdout.close()
        worker.stderr.close()
        (entry,) = sim.requests()
        offset = entry["prompt_tokens"] - fenced_tokens(calibration.body)
    tokens_to_id = fingerprints(items, offset)
    with start_process(config) as sim:
        # Run 1: once checkpoints have landed, kill at a moment chosen by the endpoint's progress
        # (half the reviews answered), not by the checkpoint writes.
        worker = start_worker(dsn, schema, sim.base_url, key)
        assert worker.stdout.readline().startswith("PLANNED"), worker.stderr.read()
        deadline = time.monotonic() + 60
        while count_rows(dsn, schema) == 0 or sim.stats()["by_status"].get("200", 0) < KILL_AT_ANSWERS:
            assert worker.poll() is None, f"the worker ended before the kill: {worker.stderr.read()}"
            assert time.monotonic() < deadline, "the worker made no progress in time"
            time.sleep(0.005)
        t_kill = time.time()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert worker.returncode == -signal.SIGKILL
        worker.stdout.close()
        worker.stderr.close()
        time.sleep(0.5)  # let the endpoint notice the dropped connections (logged as 499)
        log1 = sim.requests()
        ok1, failed1 = rows(dsn, schema)
        saved1 = ok1 | failed1

        # Run 2: the same chunk again, to the end.
        worker = start_worker(dsn, schema, sim.base_url, key)
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]
        assert "DONE" in out
        log2 = sim.requests(since=len(log1))

    cfg = PipelineConfig(llm=h.fast_llm("http://unused", key), warehouse_schema=schema)
    book = h.assert_invariant(dsn, schema, cfg.version, expected_ids={r.review_id for r in items})

    def ids(entries: list[dict]) -> list[str]:
        return [tokens_to_id[e["prompt_tokens"]] for e in entries if e["prompt_tokens"]]

    # Error replies are answered before the prompt is counted (prompt_tokens 0): nothing paid, no name.
    unknown = [e for e in log1 + log2 if e["prompt_tokens"] and e["prompt_tokens"] not in tokens_to_id]
    assert not unknown, f"requests with an unknown text: {unknown[:3]}"
    assert all(e["prompt_tokens"] for e in log1 + log2 if e["status"] in (200, 499))
    paid1 = set(ids([e for e in log1 if e["status"] == 200]))
    paid2 = set(ids([e for e in log2 if e["status"] == 200]))
    in_flight = [e for e in log1 if e["t_start"] <= t_kill and (e["status"] == 499 or e["t_end"] >= t_kill)]
    unsaved = paid1 - saved1  # answered (paid) before the kill but not yet checkpointed
    paid_twice = paid1 & paid2

    # The second run never asks again for a review that was saved by the first.
    assert not set(ids(log2)) & saved1
    # What is paid twice is exactly what was paid but not yet saved when the process died.
    assert paid_twice == unsaved
    assert len(paid_twice) <= len(in_flight) + len(unsaved)
    # The checkpoint cadence (group commit, >= one write per 0.1 s) keeps the unsaved window small.
    assert len(unsaved) <= 30, f"{len(unsaved)} answered reviews were not checkpointed at the kill"

    figures = {
        "reviews": N,
        "saved_before_kill": len(saved1),
        "requests_run1": len(log1),
        "requests_run2": len(log2),
        "faults_injected": sum(1 for e in log1 + log2 if e["fault"]),
        "in_flight_at_kill": len(in_flight),
        "answered_not_checkpointed_at_kill": len(unsaved),
        "paid_twice": len(paid_twice),
        "analyzed": len(book.analyzed),
        "failed": len(book.failed),
        "failure_reasons": dict(book.reasons()),
    }
    FIGURES_FILE.write_text(json.dumps(figures, indent=2))
    print("crash recovery:", figures)
