"""Dry-run cost estimate: what a run would send and spend, without calling the endpoint.

Prompt tokens are counted on the very messages the analyzer would send (same cleaning, packing,
aliases and system message for the response_format in force) with ``reviewlens.tokens``, the counter
the simulator's ``usage`` also uses. A json_schema ``response_format`` is not counted: the local
endpoint does not bill it, though OpenAI bills it as prompt tokens (~135 per request for the
default schema; see ``docs/benchmarks.md``). Output
tokens cannot be known before asking, so each analysed review is charged a constant
(``EXPECTED_OUTPUT_TOKENS_PER_REVIEW``) plus a small per-request overhead for the reply envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reviewlens.analyzer import aliases, plan_packs
from reviewlens.config import LLMSettings
from reviewlens.errors import BadReviewInput
from reviewlens.models import Review
from reviewlens.pricing import PriceTable
from reviewlens.prompts import build_messages, for_response_format, prepare_review_text
from reviewlens.taxonomy import Taxonomy
from reviewlens.tokens import count_message_tokens

# Calibrated on the local endpoint with 2,000 sample_data reviews and the cl100k tokenizer: one result
# object (id, sentiment, categories, an extractive 12-50 word summary, confidence, language) averages
# 62 tokens there (61.9; 60.7-61.9 over three seeds). Real models write shorter summaries, so this errs
# on the expensive side. Re-calibrate when the prompt, the reply shape or the tokenizer changes.
EXPECTED_OUTPUT_TOKENS_PER_REVIEW = 62
# '{"results": [' ... ']}' around the items of one reply.
REPLY_OVERHEAD_TOKENS = 4


@dataclass(frozen=True)
class Estimate:
    """What a run over some reviews is expected to cost."""

    model: str
    reviews: int
    skipped: int  # unusable input (empty text): failed without a request, costs nothing
    requests: int
    prompt_tokens: int
    output_tokens: int
    cost_usd: float
    priced: bool  # False: the model has no entry in the price table, cost shown as 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def prompt_tokens_per_review(self) -> float:
        analysed = self.reviews - self.skipped
        return self.prompt_tokens / analysed if analysed else 0.0


def estimate_cost(
    reviews: Sequence[Review],
    settings: LLMSettings,
    taxonomy: Taxonomy,
    prices: PriceTable,
    expected_output_tokens: int | None = None,
    *,
    max_review_chars: int = 8000,
) -> Estimate:
    """Estimate requests, tokens and USD for analysing ``reviews`` with ``settings`` (no retries counted).

    ``expected_output_tokens`` is per review; default ``EXPECTED_OUTPUT_TOKENS_PER_REVIEW``.
    """
    per_review = (
        EXPECTED_OUTPUT_TOKENS_PER_REVIEW if expected_output_tokens is None else expected_output_tokens
    )
    pending: list[tuple[str, str]] = []  # (review id, cleaned text)
    skipped = 0
    for review in reviews:
        try:
            text, _ = prepare_review_text(review.body, max_review_chars)
        except BadReviewInput:
            skipped += 1
            continue
        pending.append((review.review_id, text))
    packs = plan_packs(pending, settings.reviews_per_request, key=lambda item: item[0])
    # "auto" sends json_schema first (and keeps it unless the endpoint rejects it).
    kind = "json_schema" if settings.response_format == "auto" else settings.response_format
    prompt_tokens = 0
    for pack in packs:
        items = list(zip(aliases(len(pack)), (text for _, text in pack), strict=True))
        prompt_tokens += count_message_tokens(
            for_response_format(build_messages(items, taxonomy), kind, taxonomy)
        )
    output_tokens = per_review * len(pending) + REPLY_OVERHEAD_TOKENS * len(packs)
    return Estimate(
        model=settings.model,
        reviews=len(reviews),
        skipped=skipped,
        requests=len(packs),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        cost_usd=prices.cost(settings.model, prompt_tokens, output_tokens),
        priced=prices.is_priced(settings.model),
    )
