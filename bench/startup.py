"""Start-up cost of one ``analyze_reviews`` call: time to the first request, CPU, live tasks.

Run from the repository root::

    .venv/bin/python bench/startup.py                 # 45,000 reviews + 10 chunks of 200 (~3 min)
    .venv/bin/python bench/startup.py --reviews 5000 --chunks 3

Two cases, both against the local endpoint in its own process (``start_process``: lognormal
latency, median 800 ms, p95 2.5 s, no rate limit, so start-up is not hidden behind a budget):

- ``large``: one call over ``--reviews`` reviews at K=1 with 1,024 in flight, the shape of the
  throughput benchmark's ``large_account`` case. It shows what preparing every review and creating
  every task up front costs before the first request leaves.
- ``chunk``: ``--chunks`` calls over 200 reviews at K=10 (the pipeline's default chunk: 20 requests),
  each after ``reset()`` of the endpoint, so every call draws the same latencies. It shows what the
  lone first request costs a small chunk.

Each case runs unseeded (the first request goes alone, as in direct library use) and seeded from
one proof made beforehand (as ``check_setup`` does for the DAG's chunks). Times come from the
endpoint's request log (``t_start``/``t_end``, the same host clock as ``time.time()`` here); CPU is
``time.process_time()`` of this process around the call (the endpoint's CPU is in its own process).
The tokenizer is loaded before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "include"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from reviewlens import analyzer, preflight  # noqa: E402
from reviewlens.analyzer import analyze_reviews  # noqa: E402
from reviewlens.client import ChatClient  # noqa: E402
from reviewlens.config import LLMSettings, Secret  # noqa: E402
from reviewlens.models import Review  # noqa: E402
from reviewlens.pricing import load_prices  # noqa: E402
from reviewlens.sample_data import generate_reviews  # noqa: E402
from reviewlens.simulator import SimulatorConfig, SimulatorHandle, start_process  # noqa: E402
from reviewlens.taxonomy import load_taxonomy  # noqa: E402
from reviewlens.tokens import count_tokens  # noqa: E402

API_KEY = "sk-bench-startup"
TAXONOMY = load_taxonomy(None)
PRICES = load_prices(None)


@dataclass(frozen=True)
class Measure:
    """One call of ``analyze_reviews`` as the client and the endpoint saw it."""

    case: str
    seeded: bool
    reviews: int
    requests: int
    first_request_s: float  # from the call to the first request's arrival at the endpoint
    started_before_first_reply: int  # requests that arrived before the first one was answered
    wall_s: float  # from the call to the last outcome
    cpu_s: float
    peak_tasks: int


async def _sample_tasks(peak: list[int], every_s: float) -> None:
    while True:
        peak[0] = max(peak[0], len(asyncio.all_tasks()))
        await asyncio.sleep(every_s)


async def _call(
    reviews: list[Review], llm: LLMSettings, seed: dict[str, Any] | None
) -> tuple[float, float, float, int]:
    """One chunk's client and analysis; returns (called at, wall s, cpu s, peak live tasks)."""
    peak = [0]
    sampler = asyncio.create_task(_sample_tasks(peak, 0.5))
    called, cpu = time.time(), time.process_time()
    if seed is not None:
        state = analyzer.EndpointState.from_dict(seed, llm)
        client = ChatClient(llm, key_verified=state.checked)
    else:
        state, client = analyzer.EndpointState(), ChatClient(llm)
    async with client:
        outcomes = await analyze_reviews(
            reviews, client, settings=llm, taxonomy=TAXONOMY, prices=PRICES, endpoint_state=state
        )
    wall, cpu = time.time() - called, time.process_time() - cpu
    sampler.cancel()
    assert len(outcomes) == len(reviews)
    return called, wall, cpu, peak[0]


def measure(
    sim: SimulatorHandle, case: str, reviews: list[Review], llm: LLMSettings, seed: dict[str, Any] | None
) -> Measure:
    sim.reset()
    called, wall, cpu, peak = asyncio.run(_call(reviews, llm, seed))
    log = sorted(sim.requests(), key=lambda e: e["t_start"])
    first = log[0]
    return Measure(
        case=case,
        seeded=seed is not None,
        reviews=len(reviews),
        requests=len(log),
        first_request_s=round(first["t_start"] - called, 4),
        started_before_first_reply=sum(1 for e in log if e["t_start"] < first["t_end"]),
        wall_s=round(wall, 3),
        cpu_s=round(cpu, 3),
        peak_tasks=peak,
    )


def prove(llm: LLMSettings) -> dict[str, Any]:
    """What check_setup hands the chunks: one proof, made before anything is timed."""

    async def go() -> dict[str, Any]:
        async with ChatClient(llm) as client:
            state = await preflight.prove_endpoint(client, llm, TAXONOMY)
        return state.as_dict()

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=45_000, help="reviews of the large case")
    parser.add_argument("--chunks", type=int, default=10, help="repetitions of the 200-review chunk")
    args = parser.parse_args(argv)

    count_tokens("warm up the tokenizer")  # a per-process cost, not a per-call one
    config = SimulatorConfig(api_key=API_KEY, latency_median_ms=800, latency_p95_ms=2500, rpm=None, seed=3)
    rows: list[Measure] = []
    with start_process(config) as sim:
        base = LLMSettings(base_url=sim.base_url, api_key=Secret(API_KEY))
        large = base.with_(reviews_per_request=1, max_concurrency=1024)
        chunk = base.with_(reviews_per_request=10, max_concurrency=256)
        seed = prove(chunk)
        big = list(generate_reviews([date(2026, 11, 1)], args.reviews, seed=11))
        small = big[:200]
        for seeded in (False, True):
            rows.append(measure(sim, "large", big, large, seed if seeded else None))
            for _ in range(args.chunks):
                rows.append(measure(sim, "chunk", small, chunk, seed if seeded else None))

    print(
        "| case | seeded | reviews | requests | first request s | sent before 1st reply | wall s | "
        "CPU s | peak tasks |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case in ("large", "chunk"):
        for seeded in (False, True):
            group = [r for r in rows if r.case == case and r.seeded == seeded]
            if not group:
                continue

            def med(name: str, group: list[Measure] = group) -> float:
                return round(statistics.median(getattr(r, name) for r in group), 3)

            runs = f" (median of {len(group)})" if len(group) > 1 else ""
            print(
                f"| {case}{runs} | {'yes' if seeded else 'no'} | {group[0].reviews} | {med('requests'):g} | "
                f"{med('first_request_s')} | {med('started_before_first_reply'):g} | {med('wall_s')} | "
                f"{med('cpu_s')} | {med('peak_tasks'):g} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
