"""Smoke test of bench/tokens.py: it runs end to end on a few reviews and ends with its RESULT line."""

from __future__ import annotations

import re

from bench import tokens


def test_tokens_bench_runs_and_ends_with_one_result_line(capsys) -> None:
    assert tokens.main(["--reviews", "20", "--no-extra"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(
        r"RESULT input_token_reduction_pct=-?\d+\.\d best_k=\d+ label_agreement_pct=\d+\.\d", lines[-1]
    ), lines[-1]
    assert sum(line.startswith("RESULT") for line in lines) == 1
    assert "endpoint usage == client-side cl100k count for every config: True" in lines
