"""The throughput benchmark runs end to end on a few dozen reviews and ends with its RESULT line.

Not timed and asserts no performance figure (the machine may be busy): it only proves that
``bench/throughput.py`` still works against the current client, budget, analyzer and simulator.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULT = re.compile(
    r"^RESULT ceiling_pct_min=\S+ ratio_vs_naive=\S+ shared_budget_peak_pct=\S+ rate_limited_pct=\S+$"
)


def test_benchmark_smoke_run_prints_one_result_line(pg_dsn: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "throughput.py"), "--smoke", "--dsn", pg_dsn],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert RESULT.match(lines[-1]), lines[-5:]
    assert sum(line.startswith("RESULT") for line in lines) == 1
    # Every case produced a row of the table, naive and shared budget included.
    for case in ("naive", "request_limited", "shared_budget_4_workers", "large_account", "token_limited"):
        assert any(line.startswith(f"| {case} |") for line in lines), case


def test_startup_benchmark_smoke_run_prints_both_cases_seeded_and_not() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "startup.py"), "--reviews", "60", "--chunks", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| large", "| chunk"))]
    assert [row.split("|")[2].strip() for row in rows] == ["no", "yes", "no", "yes"], rows
