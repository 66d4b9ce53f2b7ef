"""Throughput benchmark: our client at the provider's rate limit vs the naive processor, side by side.

Run from the repository root::

    .venv/bin/python bench/throughput.py            # full run (~10-15 min on 2 cores)
    .venv/bin/python bench/throughput.py --quick    # < 3 min
    .venv/bin/python bench/throughput.py --smoke    # a few dozen reviews, seconds (the test uses it)
    .venv/bin/python bench/throughput.py --cpu-sweep  # client CPU per request at 25-500 requests/s

The local endpoint runs in its own process (``start_process``) with a lognormal latency (median
800 ms, p95 2.5 s) and the case's RPM/TPM limits. Every client case also runs in a process of its
own (``multiprocessing`` spawn), so that the client CPU measured with ``time.process_time()`` is the
client's alone. The cases, all on reviews from ``reviewlens.sample_data.generate_reviews``:

- ``naive``: ``bench/naive.py`` (fresh connection per request, batches of 50, semaphore 10, 5 s sleep
  on 429, sentiment by word search), request-limited account (6,000 RPM);
- ``ours``: one chunk, ``ChatClient`` + ``analyze_reviews`` (the pipeline's path, K=1) with the
  pipeline's budget (``make_budget`` -> ``PostgresBudget``), same account;
- ``shared4``: 4 worker *processes* at once, each its own ``ChatClient`` and its own
  ``PostgresBudget`` on the same account key, a quarter of the reviews each;
- ``large``: 30,000 RPM (hundreds in flight); ``tokens``: token-limited; ``latency``: no limits
  (concurrency-bound) at 1k/5k/20k reviews; ``transport``: our client on aiohttp vs httpx at 200 in
  flight.

Ceiling = min(RPM/60, TPM/(60 x tokens per request), max concurrency / mean latency), with tokens per
request and mean latency measured from the endpoint's request log of the case.

% of ceiling ("whole run") = 200-answered requests / (time from the client's start to the last
request's arrival at the endpoint): start-up and the concurrency ramp-up count; only the drain of
the last replies (one latency) does not. Before the clock starts, each client process proves the
endpoint with one tiny completion (``preflight.prove_endpoint``), as the DAG's ``check_setup`` does
before any chunk runs; that request is left out of the figures. The
end-to-end rate (reviews / wall time, drain included) and the steady state (10th-90th percentile of
arrivals) are reported next to it. The RESULT line uses the whole-run figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "include"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from reviewlens.models import Review  # noqa: E402
from reviewlens.sample_data import generate_reviews  # noqa: E402

API_KEY = "sk-bench-0000"


def find_dsn() -> str:
    """REVIEWLENS_BENCH_PG, else the demo's search: 127.0.0.1:5432, a throwaway cluster, pgserver."""
    if os.environ.get("REVIEWLENS_BENCH_PG"):
        return os.environ["REVIEWLENS_BENCH_PG"]
    from scripts.embedded_postgres import find_or_start

    server = find_or_start(ROOT / ".demo")
    print(f"# shared budget on {server.how}", flush=True)
    return server.database_url("postgres")


BUDGET_TABLE = "reviewlens_bench_rate_budget"
LATENCY_MEDIAN_MS = 800.0
LATENCY_P95_MS = 2500.0
WINDOW_S = 10.0


@dataclass(frozen=True)
class Case:
    """One side-by-side run: the endpoint's limits and what runs against it."""

    name: str
    kind: str  # "naive" | "ours"
    reviews: int
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int = 256
    workers: int = 1
    transport: str = "aiohttp"
    latency_median_ms: float = LATENCY_MEDIAN_MS
    latency_p95_ms: float = LATENCY_P95_MS
    budget: dict[str, Any] = field(default_factory=dict)
    counted: bool = True  # part of ceiling_pct_min / rate_limited_pct


def reviews_for(count: int, seed: int = 11) -> list[Review]:
    """The same deterministic reviews for every case of a given size."""
    return list(generate_reviews([date(2024, 3, 1)], count, seed=seed))


# -- client side (runs in a child process) -------------------------------------------------------


def _client_process(
    case: Case, base_url: str, dsn: str, account: str, part: int, queue: Any, barrier: Any
) -> None:
    try:
        all_reviews = reviews_for(case.reviews)
        mine = all_reviews[part :: case.workers]
        if barrier is not None:
            barrier.wait()
        result = asyncio.run(_run_client(case, mine, base_url, dsn, account))
    except BaseException as exc:  # report, never hang the parent
        result = {"error": f"{type(exc).__name__}: {exc}"}
    queue.put(result)


async def _run_client(
    case: Case, reviews: list[Review], base_url: str, dsn: str, account: str
) -> dict[str, Any]:
    if case.kind == "naive":
        from bench.naive import run_naive

        t0, cpu0 = time.time(), time.process_time()
        out = await run_naive(reviews, base_url, API_KEY, "reviewlens-sim-1")
        t1, cpu1 = time.time(), time.process_time()
        return {
            "t0": t0,
            "t1": t1,
            "cpu_s": cpu1 - cpu0,
            "ok": len(out.sentiments),
            "requests": out.requests,
            "rate_limited": out.rate_limited,
            "latencies_s": out.latencies_s,
            "peak_in_flight": 10,
        }

    from reviewlens.analyzer import analyze_reviews
    from reviewlens.client import ChatClient
    from reviewlens.config import LLMSettings, Secret
    from reviewlens.preflight import prove_endpoint
    from reviewlens.pricing import load_prices
    from reviewlens.rate_budget import make_budget
    from reviewlens.taxonomy import load_taxonomy

    settings = LLMSettings(
        base_url=base_url,
        api_key=Secret(API_KEY),
        requests_per_minute=case.rpm,
        tokens_per_minute=case.tpm,
        max_concurrency=case.max_concurrency,
        budget_key=account,
        reviews_per_request=1,  # request for request against the naive processor
    )
    taxonomy, prices = load_taxonomy(), load_prices()
    # The DAG's check_setup proves the endpoint once, before any chunk: one tiny real completion
    # (key accepted, response_format kind). Done here before the clock starts, as in the DAG, and
    # handed to the chunk, which then opens its whole window at once instead of sending alone first.
    async with ChatClient(settings) as probe:
        endpoint = await prove_endpoint(probe, settings, taxonomy)
    t0, cpu0 = time.time(), time.process_time()
    budget = make_budget(settings, dsn=dsn or None, table=BUDGET_TABLE, **case.budget)
    client = ChatClient(
        settings,
        budget=budget,
        transport=case.transport,  # type: ignore[arg-type]
        key_verified=endpoint.checked,
        expected_output_ratio=endpoint.output_ratio,
    )
    async with budget, client:
        outcomes = await analyze_reviews(
            reviews, client, settings=settings, taxonomy=taxonomy, prices=prices, endpoint_state=endpoint
        )
    t1, cpu1 = time.time(), time.process_time()
    return {
        "t0": t0,
        "t1": t1,
        "cpu_s": cpu1 - cpu0,
        "ok": sum(o.ok for o in outcomes),
        "failed": {
            r: sum(1 for o in outcomes if o.reason == r) for r in {o.reason for o in outcomes if not o.ok}
        },
        "requests": client.stats.requests,
        "rate_limited": client.stats.rate_limited,
        "latencies_s": [o.latency_ms / 1000 for o in outcomes if o.ok],
        "peak_in_flight": client.limiter.peak_in_flight,
        "final_limit": client.limiter.limit,
        "limit_decreases": client.limiter.decreases,
    }


# -- one case: endpoint + client processes, then the numbers -----------------------------------


def run_case(case: Case, dsn: str, seed: int = 0) -> dict[str, Any]:
    from reviewlens.simulator import SimulatorConfig, start_process

    config = SimulatorConfig(
        api_key=API_KEY,
        seed=seed,
        latency_median_ms=case.latency_median_ms,
        latency_p95_ms=case.latency_p95_ms,
        rpm=case.rpm,
        tpm=case.tpm,
    )
    account = f"bench-{case.name}-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    with start_process(config) as sim:
        queue = ctx.Queue()
        barrier = ctx.Barrier(case.workers) if case.workers > 1 else None
        procs = [
            ctx.Process(target=_client_process, args=(case, sim.base_url, dsn, account, i, queue, barrier))
            for i in range(case.workers)
        ]
        for proc in procs:
            proc.start()
        parts = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        log = sim.requests()
        sim_stats = sim.stats()
    if dsn and case.kind == "ours":
        _drop_budget_row(dsn, account)
    errors = [p["error"] for p in parts if "error" in p]
    if errors:
        raise RuntimeError(f"case {case.name} failed: {errors}")
    return summarize(case, parts, log, sim_stats)


def _drop_budget_row(dsn: str, account: str) -> None:
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {BUDGET_TABLE} WHERE account_key = %s", (account,))  # type: ignore[arg-type]
    except psycopg.Error:
        pass


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def peak_window_rate(starts: list[float], window: float = WINDOW_S) -> float:
    """The highest number of arrivals in any ``window``-second interval, per second."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window


def summarize(
    case: Case, parts: list[dict[str, Any]], log: list[dict[str, Any]], sim: dict[str, Any]
) -> dict[str, Any]:
    # The preflight's one request (before the clock starts, like the DAG's check_setup) is not the chunk's.
    log = [e for e in log if e["t_start"] >= min(p["t0"] for p in parts)]
    ok_entries = [e for e in log if e["status"] == 200]
    n_total = len(log)
    n200 = len(ok_entries)
    n429 = sum(1 for e in log if e["status"] == 429)
    starts = sorted(e["t_start"] for e in ok_entries)
    t0 = min(p["t0"] for p in parts)
    t1 = max(p["t1"] for p in parts)
    wall = t1 - t0
    tokens_per_request = statistics.fmean(e["prompt_tokens"] + e["completion_tokens"] for e in ok_entries)
    mean_latency = statistics.fmean(e["latency_ms"] for e in ok_entries) / 1000
    # The account's ceiling, for the naive processor too (its own semaphore of 10 is its choice).
    bounds = {"concurrency": case.max_concurrency * case.workers / mean_latency}
    if case.rpm:
        bounds["rpm"] = case.rpm / 60
    if case.tpm:
        bounds["tpm"] = case.tpm / (60 * tokens_per_request)
    bound_by = min(bounds, key=bounds.__getitem__)
    ceiling = bounds[bound_by]
    whole = n200 / max(1e-9, starts[-1] - t0)  # start-up and ramp-up included, drain excluded
    lo, hi = starts[len(starts) // 10], starts[(len(starts) * 9) // 10]
    steady = (len(starts) * 8 // 10) / max(1e-9, hi - lo)
    ok = sum(p["ok"] for p in parts)
    requests = sum(p["requests"] for p in parts)
    cpu_s = sum(p["cpu_s"] for p in parts)
    latencies = [x for p in parts for x in p["latencies_s"]]
    peak = peak_window_rate([e["t_start"] for e in log])
    return {
        "case": case.name,
        "kind": case.kind,
        "transport": case.transport,
        "workers": case.workers,
        "reviews": case.reviews,
        "rpm": case.rpm,
        "tpm": case.tpm,
        "max_concurrency": case.max_concurrency,
        "counted": case.counted,
        "ok": ok,
        "wall_s": round(wall, 2),
        "reviews_per_s": round(ok / wall, 2),
        "whole_req_per_s": round(whole, 2),
        "steady_req_per_s": round(steady, 2),
        "ceiling_req_per_s": round(ceiling, 2),
        "bound_by": bound_by,
        "ceiling_pct": round(100 * whole / ceiling, 2),
        "steady_pct": round(100 * steady / ceiling, 2),
        "e2e_pct": round(100 * (n200 / wall) / ceiling, 2),
        "requests": n_total,
        "rate_limited": n429,
        "rate_limited_pct": round(100 * n429 / max(1, n_total), 3),
        "p50_latency_s": round(_percentile(latencies, 0.5), 3),
        "p95_latency_s": round(_percentile(latencies, 0.95), 3),
        "client_cpu_s": round(cpu_s, 2),
        "client_cpu_ms_per_req": round(1000 * cpu_s / max(1, requests), 3),
        "sim_cpu_s": round(sim["cpu_s"], 2),
        "sim_cpu_ms_per_req": round(1000 * sim["cpu_s"] / max(1, n_total), 3),
        "sim_max_inflight": sim.get("max_inflight"),
        "peak_window_pct": round(100 * peak / (case.rpm / 60), 2) if case.rpm else None,
        "tokens_per_request": round(tokens_per_request, 1),
        "mean_latency_s": round(mean_latency, 3),
        "peak_in_flight": max(p["peak_in_flight"] for p in parts),
        "limit_decreases": sum(p.get("limit_decreases", 0) for p in parts),
        "failed": [p.get("failed") for p in parts],
        "first_request_after_s": round(min(e["t_start"] for e in log) - t0, 3),
        "first_seconds": [sum(1 for t in starts if t0 + i <= t < t0 + i + 1) for i in range(6)],
        "drain_s": round(t1 - starts[-1], 3),
        "rate_limited_at_s": [round(e["t_start"] - t0, 2) for e in log if e["status"] == 429][:20],
    }


# -- the plan ----------------------------------------------------------------------------------


def plan(mode: str, tokens_per_request: float) -> list[Case]:
    """The cases of a run; review counts are chosen for >= 30-60 s at the ceiling (full mode)."""
    if mode == "sweep":
        # The same chunk paced at different rates, ~25 s each: how client CPU per request depends on
        # how busy the process is (the 4-worker case runs each process at ~25 requests/s).
        return [
            Case(
                f"cpu_at_{rpm}_rpm",
                "ours",
                rpm * 25 // 60,
                rpm=rpm,
                max_concurrency=max(256, rpm // 30),
                counted=False,
            )
            for rpm in (1500, 3000, 6000, 30000)
        ]
    n = {
        "full": {
            "naive": 800,
            "req": 9000,
            "large": 45000,
            "tok": 4500,
            "lat": (1000, 5000, 20000),
            "tr": 6000,
        },
        "quick": {"naive": 150, "req": 2000, "large": 6000, "tok": 900, "lat": (1000, 3000), "tr": 1200},
        "smoke": {"naive": 30, "req": 40, "large": 40, "tok": 40, "lat": (40,), "tr": 40},
    }[mode]
    token_rate = 50.0  # requests/s the TPM allows: half the RPM case, so TPM is the binding limit
    tpm = int(round(token_rate * 60 * tokens_per_request, -3))
    fast = {"latency_median_ms": 20.0, "latency_p95_ms": 60.0} if mode == "smoke" else {}
    cases = [
        Case("naive", "naive", n["naive"], rpm=6000, **fast),
        Case("request_limited", "ours", n["req"], rpm=6000, **fast),
        Case("shared_budget_4_workers", "ours", n["req"], rpm=6000, workers=4, **fast),
        Case("large_account", "ours", n["large"], rpm=30000, max_concurrency=1024, **fast),
        Case("token_limited", "ours", n["tok"], tpm=tpm, **fast),
    ]
    for count in n["lat"]:
        cases.append(Case(f"latency_limited_{count}", "ours", count, counted=count == max(n["lat"]), **fast))
    for transport in ("aiohttp", "httpx"):
        cases.append(
            Case(
                f"transport_{transport}_200",
                "ours",
                n["tr"],
                max_concurrency=200,
                transport=transport,
                counted=False,
                **fast,
            )
        )
    return cases


def probe_tokens_per_request() -> float:
    """Prompt + completion tokens of one request of the pipeline's prompt on these reviews."""
    from reviewlens.prompts import build_messages, prepare_review_text
    from reviewlens.simulator.analysis import answer, parse_prompt, render
    from reviewlens.taxonomy import load_taxonomy
    from reviewlens.tokens import count_message_tokens, count_tokens

    taxonomy = load_taxonomy()
    sizes = []
    for review in reviews_for(400):
        try:
            text, _ = prepare_review_text(review.body, 8000)
        except Exception:
            continue
        messages = build_messages([("1", text)], taxonomy)
        reply = render(answer(parse_prompt(messages)))
        sizes.append(count_message_tokens(messages) + count_tokens(reply))
    return statistics.fmean(sizes)


# -- report ------------------------------------------------------------------------------------

COLUMNS = [
    ("case", "case"),
    ("reviews", "reviews"),
    ("reviews_per_s", "reviews/s"),
    ("ceiling_req_per_s", "ceiling/s"),
    ("bound_by", "bound"),
    ("ceiling_pct", "% ceil (whole)"),
    ("steady_pct", "% ceil (steady)"),
    ("e2e_pct", "% ceil (e2e)"),
    ("rate_limited", "429s"),
    ("p50_latency_s", "p50 s"),
    ("p95_latency_s", "p95 s"),
    ("client_cpu_ms_per_req", "client CPU s/1k req"),
    ("sim_cpu_ms_per_req", "endpoint CPU s/1k req"),
    ("peak_in_flight", "peak in flight"),
    ("peak_window_pct", "peak 10 s % of RPM"),
    ("wall_s", "wall s"),
]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, rule]
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def result_line(rows: list[dict[str, Any]]) -> str:
    """The one summary line; a figure whose case did not run (``--only``) is ``nan``."""
    by_name = {r["case"]: r for r in rows}
    ours = [r for r in rows if r["kind"] == "ours" and r["counted"]]
    ceiling_min = min((r["ceiling_pct"] for r in ours), default=math.nan)
    ratio = math.nan
    if "naive" in by_name and "request_limited" in by_name:
        ratio = by_name["request_limited"]["reviews_per_s"] / max(1e-9, by_name["naive"]["reviews_per_s"])
    shared = by_name.get("shared_budget_4_workers")
    shared_peak = shared["peak_window_pct"] if shared else math.nan
    total = sum(r["requests"] for r in ours)
    limited = sum(r["rate_limited"] for r in ours)
    limited_pct = 100 * limited / total if total else math.nan
    return (
        f"RESULT ceiling_pct_min={ceiling_min:.1f} ratio_vs_naive={ratio:.1f} "
        f"shared_budget_peak_pct={shared_peak:.1f} rate_limited_pct={limited_pct:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller review counts (< 3 min)")
    mode.add_argument("--smoke", action="store_true", help="a few dozen reviews, fast latency (tests)")
    mode.add_argument(
        "--cpu-sweep",
        action="store_true",
        help="one chunk at 1,500-30,000 RPM: client CPU vs rate (~2.5 min)",
    )
    parser.add_argument(
        "--dsn", default=None, help="Postgres for the shared budget (default: as the demo finds one)"
    )
    parser.add_argument("--only", default="", help="comma-separated case names (RESULT needs the defaults)")
    parser.add_argument("--json", default="", help="write the rows to this file")
    args = parser.parse_args(argv)
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "sweep" if args.cpu_sweep else "full"

    started = time.monotonic()
    args.dsn = args.dsn or find_dsn()
    tpr = probe_tokens_per_request()
    cases = plan(mode_name, tpr)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.name in wanted]
    print(f"# mode={mode_name} cpus={os.cpu_count()} tokens/request~{tpr:.0f} cases={len(cases)}", flush=True)
    rows = []
    for i, case in enumerate(cases):
        row = run_case(case, args.dsn, seed=i)
        rows.append(row)
        brief = {k: row[k] for k, _ in COLUMNS if k in row}
        print(f"# {json.dumps(brief)}", flush=True)
    print()
    print(markdown_table(rows))
    by_name = {r["case"]: r for r in rows}
    if "naive" in by_name and "request_limited" in by_name:
        ratio = by_name["request_limited"]["reviews_per_s"] / max(1e-9, by_name["naive"]["reviews_per_s"])
        print(f"\n(b)/(a) request-limited reviews/s ratio: {ratio:.2f}x")
    print(f"wall time of the whole benchmark: {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(result_line(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
