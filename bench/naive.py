"""A faithful re-implementation of the naive review processor, kept only as the benchmark's baseline.

What it does, on purpose (each is a reason it is slow):

- a new HTTP connection per request (a fresh ``httpx.AsyncClient`` per review, ``Connection: close``);
- fixed batches of 50 reviews, each ``asyncio.gather``-ed, so every batch waits for its slowest member;
- at most 10 requests in flight inside a batch (a semaphore of 10);
- on a 429 it sleeps a fixed 5 s and tries again (no ``Retry-After``, no shared pause, no budget);
- one review per request with a verbose ~60-word system prompt, and the sentiment is found by
  searching the reply text for the words "positive" / "negative".

Never used by the pipeline: it lives in ``bench/`` only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from reviewlens.models import Review

BATCH_SIZE = 50
CONCURRENCY = 10
RATE_LIMIT_SLEEP_S = 5.0
REQUEST_TIMEOUT_S = 60.0

SYSTEM_PROMPT = (
    "You are a very helpful and meticulous assistant that specialises in analysing customer product "
    "reviews written by shoppers of our online store. Please read the following customer review very "
    "carefully, think about the overall tone the customer expresses, and then tell us whether the "
    "sentiment of the review is positive, negative or neutral. Also mention which aspects of the "
    "product the customer talks about and give a short summary of the review."
)


@dataclass
class NaiveResult:
    """What the naive run produced: a sentiment per review id, and what it took."""

    sentiments: dict[str, str] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    requests: int = 0
    rate_limited: int = 0
    failures: int = 0


def sentiment_of(reply_text: str) -> str:
    """The naive way: look for the words in the reply."""
    lowered = reply_text.lower()
    if "positive" in lowered:
        return "positive"
    if "negative" in lowered:
        return "negative"
    return "neutral"


async def _one(
    review: Review, url: str, api_key: str, model: str, sem: asyncio.Semaphore, out: NaiveResult
) -> None:
    async with sem:
        while True:
            started = time.monotonic()
            # A fresh client, hence a fresh TCP connection, for every request.
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
                try:
                    response = await http.post(
                        url,
                        headers={"Authorization": f"Bearer {api_key}", "Connection": "close"},
                        json={
                            "model": model,
                            "messages": [
                                {"role": "system", "content": SYSTEM_PROMPT},
                                {"role": "user", "content": review.body},
                            ],
                        },
                    )
                except httpx.HTTPError:
                    out.requests += 1
                    out.failures += 1
                    return
            out.requests += 1
            if response.status_code == 429:
                out.rate_limited += 1
                await asyncio.sleep(RATE_LIMIT_SLEEP_S)
                continue
            out.latencies_s.append(time.monotonic() - started)
            if response.status_code != 200:
                out.failures += 1
                return
            text = response.json()["choices"][0]["message"]["content"] or ""
            out.sentiments[review.review_id] = sentiment_of(text)
            return


async def run_naive(reviews: Sequence[Review], base_url: str, api_key: str, model: str) -> NaiveResult:
    """Process ``reviews`` the naive way; returns the sentiments found and the counters."""
    url = base_url.rstrip("/") + "/chat/completions"
    out = NaiveResult()
    sem = asyncio.Semaphore(CONCURRENCY)
    for start in range(0, len(reviews), BATCH_SIZE):
        batch = [r for r in reviews[start : start + BATCH_SIZE] if r.body and r.body.strip()]
        await asyncio.gather(*(_one(r, url, api_key, model, sem, out) for r in batch))
    return out
