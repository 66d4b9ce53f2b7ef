"""Probe an endpoint before pointing the pipeline at it: models, one streamed analysis, its speed.

    PYTHONPATH=include REVIEWLENS_API_KEY=sk-... python -m reviewlens.probe \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini

Prints whether the key and model are accepted, the time to first token and tokens/s of one streamed
request (the SSE path), and whether the reply parses into a valid analysis. Costs one small request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from reviewlens.client import ChatClient
from reviewlens.config import LLMSettings, Secret
from reviewlens.errors import ConfigurationError
from reviewlens.parsing import parse_reply
from reviewlens.preflight import check_endpoint
from reviewlens.prompts import build_messages
from reviewlens.taxonomy import load_taxonomy

SAMPLE_REVIEW = "Arrived two days late and the box was crushed, but the headphones sound great for the price."


@dataclass(frozen=True)
class ProbeReport:
    """What one probe found."""

    models_listed: int
    ttft_ms: float
    tokens_per_s: float
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    reply_valid: bool
    problem: str | None


async def _stream(settings: LLMSettings) -> ProbeReport:
    taxonomy = load_taxonomy(None)
    messages = build_messages([("1", SAMPLE_REVIEW)], taxonomy)
    async with ChatClient(settings) as client:
        probe = await client.probe_stream(messages)
    parsed = parse_reply(probe.content, ["1"], taxonomy)
    item = parsed.items.get("1")
    valid = item is not None and item.analysis is not None
    return ProbeReport(
        models_listed=0,
        ttft_ms=round(probe.ttft_s * 1000, 1),
        tokens_per_s=round(probe.tokens_per_s, 1),
        latency_ms=round(probe.latency_s * 1000, 1),
        prompt_tokens=probe.prompt_tokens,
        completion_tokens=probe.completion_tokens,
        reply_valid=valid,
        problem=None if valid else f"{item.reason if item else 'missing'}: {item.message if item else ''}",
    )


def probe(settings: LLMSettings) -> ProbeReport:
    """Check the endpoint (no spend), then stream one analysis and measure it."""
    listed = check_endpoint(settings)["models_listed"]
    report = asyncio.run(_stream(settings))
    return ProbeReport(**{**report.__dict__, "models_listed": listed})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key-env", default="REVIEWLENS_API_KEY", help="variable holding the key")
    args = parser.parse_args(argv)
    settings = LLMSettings(
        base_url=args.base_url, model=args.model, api_key=Secret(os.environ.get(args.api_key_env, ""))
    )
    try:
        report = probe(settings)
    except ConfigurationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    for key, value in report.__dict__.items():
        print(f"{key:>18}: {value}")
    return 0 if report.reply_valid else 1


if __name__ == "__main__":
    raise SystemExit(main())
