"""Turn a list of reviews into exactly one ``ReviewOutcome`` per review, via an OpenAI-compatible client.

Flow for one call of ``analyze_reviews``:

1. Each review body is cleaned (``prompts.prepare_review_text``); an unusable one fails at once
   (``empty_text``) without any request.
2. The rest are packed ``settings.reviews_per_request`` (K) at a time; each pack is one task and all
   tasks start together — the client bounds concurrency and paces the rate budget itself.
3. The first request of a run goes out alone: it proves the API key (a wrong key costs exactly one
   request) and, in ``auto`` mode, whether the endpoint accepts ``response_format`` — if it answers
   ``BadRequest`` about it, the run switches to prompt-only JSON once, for every later request.
4. Each reply is parsed per review. A review whose item is invalid JSON or breaks the schema is
   re-asked once, singly, quoting the error. A review missing from (or duplicated in) a packed reply
   is retried once in a request of its own. Whatever still fails becomes a failed outcome with its
   reason and the raw reply.
5. ``AuthenticationFailed`` ends the run: every review not yet final gets ``auth_failed``, then the
   error is re-raised so the chunk stops.

Reviews are sent under short per-request aliases ("1", "2", …), not their source ids: the ids cost
tokens twice (prompt and reply), may be long (UUIDs), and are untrusted source data too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from reviewlens.config import LLMSettings
from reviewlens.errors import AuthenticationFailed, BadRequest, BadReviewInput, ProviderError
from reviewlens.models import Review, ReviewOutcome
from reviewlens.parsing import FLAG_REPAIRED_JSON, ItemResult, ReviewAnalysis, parse_reply
from reviewlens.pricing import PriceTable
from reviewlens.prompts import (
    build_messages,
    build_reask_messages,
    for_response_format,
    prepare_review_text,
    response_format_for,
)
from reviewlens.taxonomy import Taxonomy
from reviewlens.tokens import count_tokens

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_RAW_REPLY_CHARS = 2000
FLAG_REASKED = "reasked"
FLAG_RETRIED_SINGLY = "retried_singly"


class ChatReplyLike(Protocol):
    """What the analyzer reads from ``client.complete`` (``reviewlens.client.ChatReply``)."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int


class ChatClientLike(Protocol):
    """The part of ``reviewlens.client.ChatClient`` the analyzer uses."""

    async def complete(
        self, messages: list[dict[str, Any]], *, max_tokens: int, response_format: dict[str, Any] | None = ...
    ) -> ChatReplyLike: ...


@dataclass
class EndpointState:
    """What a run has learned about the endpoint; shared by all its requests.

    ``response_format`` is the kind in force ("json_schema", "json_object" or "none"); in ``auto``
    mode it starts as json_schema and drops to "none" once if the endpoint rejects it. ``checked``
    turns True once the first request came back without an authentication failure; until then
    requests queue behind ``lock``. Pass one instance to several ``analyze_reviews`` calls of the same
    process to learn this once per process instead of once per call.
    """

    response_format: str | None = None
    checked: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Pending:
    """One review on its way, with what it has cost so far."""

    index: int
    review: Review
    text: str
    flags: list[str]
    weight: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    attempts: int = 0


def plan_packs(items: Sequence[T], per_request: int, key: Callable[[T], str]) -> list[list[T]]:
    """Cut items into packs of at most ``per_request``, in order, never two equal ``key``s in one pack."""
    size = max(1, per_request)
    packs: list[list[T]] = []
    current: list[T] = []
    seen: set[str] = set()
    for item in items:
        if len(current) == size or key(item) in seen:
            packs.append(current)
            current, seen = [], set()
        current.append(item)
        seen.add(key(item))
    if current:
        packs.append(current)
    return packs


def aliases(count: int) -> list[str]:
    """The ids reviews are sent under within one request."""
    return [str(i) for i in range(1, count + 1)]


async def analyze_reviews(
    reviews: Sequence[Review],
    client: ChatClientLike,
    *,
    settings: LLMSettings,
    taxonomy: Taxonomy,
    prices: PriceTable,
    max_review_chars: int = 8000,
    on_outcome: Callable[[ReviewOutcome], None] | None = None,
    endpoint_state: EndpointState | None = None,
) -> list[ReviewOutcome]:
    """Analyze ``reviews``: one outcome per review, in input order; ``on_outcome`` sees each as it is final.

    Raises ``AuthenticationFailed`` (after reporting ``auth_failed`` for every review not yet final).
    Every other provider or reply problem becomes a failed outcome, never an exception.
    """
    run = _Run(client, settings, taxonomy, prices, on_outcome, endpoint_state or EndpointState())
    return await run.execute(reviews, max_review_chars)


class _Run:
    """The state of one ``analyze_reviews`` call."""

    def __init__(
        self,
        client: ChatClientLike,
        settings: LLMSettings,
        taxonomy: Taxonomy,
        prices: PriceTable,
        on_outcome: Callable[[ReviewOutcome], None] | None,
        state: EndpointState,
    ) -> None:
        self.client = client
        self.settings = settings
        self.taxonomy = taxonomy
        self.prices = prices
        self.on_outcome = on_outcome
        self.state = state
        self.auto = settings.response_format == "auto"
        if state.response_format is None:
            state.response_format = "json_schema" if self.auto else settings.response_format
        self.outcomes: dict[int, ReviewOutcome] = {}
        self.tasks: asyncio.TaskGroup | None = None

    async def execute(self, reviews: Sequence[Review], max_review_chars: int) -> list[ReviewOutcome]:
        pending: list[_Pending] = []
        for index, review in enumerate(reviews):
            try:
                text, flags = prepare_review_text(review.body, max_review_chars)
            except BadReviewInput as exc:
                self._finish(
                    index, ReviewOutcome(review.review_id, ok=False, reason=exc.reason, detail=str(exc))
                )
                continue
            pending.append(_Pending(index, review, text, flags, weight=max(1, count_tokens(text))))
        try:
            async with asyncio.TaskGroup() as tasks:
                self.tasks = tasks
                for pack in plan_packs(pending, self.settings.reviews_per_request, key=_review_id):
                    tasks.create_task(self._request(pack, first_try=True))
        except BaseExceptionGroup as group:
            auth = _first_leaf(group.subgroup(AuthenticationFailed))
            if auth is None:
                other = _first_leaf(group)
                raise (other if other is not None and len(group.exceptions) == 1 else group) from None
            for item in pending:
                if item.index not in self.outcomes:
                    self._fail(item, "auth_failed", str(auth), status=auth.status)
            raise auth from None
        for item in pending:  # cannot happen by construction; keeps "one outcome per review" unconditional
            if item.index not in self.outcomes:
                log.error("Review %s ended without an outcome; recording it as failed", item.review.review_id)
                self._fail(item, "missing_in_reply", "the analyzer produced no outcome for this review")
        return [self.outcomes[i] for i in range(len(reviews))]

    # --- requests -------------------------------------------------------------------------------

    async def _request(self, pack: list[_Pending], *, first_try: bool) -> None:
        """Send ``pack`` in one request; settle what succeeded, schedule re-asks and single retries."""
        ids = aliases(len(pack))
        messages = build_messages(list(zip(ids, (p.text for p in pack), strict=True)), self.taxonomy)
        reply = await self._send_or_fail(messages, pack)
        if reply is None:
            return
        parsed = parse_reply(reply.content, ids, self.taxonomy)
        for review_id, item in zip(ids, pack, strict=True):
            result = parsed.items[review_id]
            if result.analysis is not None:
                self._succeed(item, result.analysis, repaired=parsed.repaired)
            elif result.reason == "missing_in_reply":
                if first_try:
                    item.flags.append(FLAG_RETRIED_SINGLY)
                    self._spawn(self._request([item], first_try=False))
                else:
                    self._fail(item, result.reason, result.message, raw=reply.content)
            else:
                # Quote only this review's item when it was packed: shorter and unambiguous.
                bad = reply.content if len(pack) == 1 or result.raw is None else result.raw
                self._spawn(self._reask(item, result, bad))

    async def _reask(self, item: _Pending, result: ItemResult, bad_reply: str) -> None:
        """Ask once more for one review, quoting why its answer was rejected."""
        messages = build_reask_messages(
            build_messages([("1", item.text)], self.taxonomy), bad_reply, f"{result.reason}: {result.message}"
        )
        item.flags.append(FLAG_REASKED)
        reply = await self._send_or_fail(messages, [item])
        if reply is None:
            return
        parsed = parse_reply(reply.content, ["1"], self.taxonomy)
        again = parsed.items["1"]
        if again.analysis is not None:
            self._succeed(item, again.analysis, repaired=parsed.repaired)
        else:
            self._fail(item, again.reason or "invalid_json", again.message, raw=reply.content)

    async def _send_or_fail(
        self, messages: list[dict[str, Any]], pack: list[_Pending]
    ) -> ChatReplyLike | None:
        """Send; charge the reply's usage to ``pack``; on a provider error fail the pack and return None."""
        try:
            reply = await self._send(messages, len(pack))
        except AuthenticationFailed:
            raise
        except ProviderError as exc:
            for item in pack:
                item.attempts += exc.attempts
                self._fail(item, exc.reason, str(exc), status=exc.status)
            return None
        self._charge(pack, reply)
        return reply

    async def _send(self, messages: list[dict[str, Any]], reviews: int) -> ChatReplyLike:
        """Send one request; the very first one of the run goes alone (see the module docstring)."""
        if not self.state.checked:
            async with self.state.lock:
                if not self.state.checked:
                    try:
                        reply = await self._complete(messages, reviews)
                    except AuthenticationFailed:
                        raise
                    except ProviderError:
                        # Only a key rejection is worth holding everyone back for.
                        self.state.checked = True
                        raise
                    self.state.checked = True
                    return reply
        return await self._complete(messages, reviews)

    async def _complete(self, messages: list[dict[str, Any]], reviews: int) -> ChatReplyLike:
        kind = self.state.response_format or "none"
        try:
            return await self.client.complete(
                # With a json_schema the reply shape travels in the request, not in the prompt.
                for_response_format(messages, kind, self.taxonomy),
                max_tokens=self._max_tokens(reviews),
                response_format=response_format_for(kind, self.taxonomy),
            )
        except BadRequest as exc:
            if not (self.auto and kind != "none" and _about_response_format(exc)):
                raise
            if self.state.response_format != "none":
                log.warning(
                    "The endpoint rejected response_format=%s (%s); prompt-only JSON from now on",
                    kind,
                    exc,
                )
                self.state.response_format = "none"
        return await self.client.complete(
            messages, max_tokens=self._max_tokens(reviews), response_format=None
        )

    def _max_tokens(self, reviews: int) -> int:
        # settings.max_output_tokens is a per-review ceiling; a pack of K needs K answers.
        return self.settings.max_output_tokens * max(1, reviews)

    def _spawn(self, coro: Any) -> None:
        assert self.tasks is not None
        self.tasks.create_task(coro)

    # --- accounting and outcomes ---------------------------------------------------------------

    def _charge(self, pack: list[_Pending], reply: ChatReplyLike) -> None:
        """Split the request's usage over its reviews by their prompt text tokens; each gets its latency."""
        weights = [item.weight for item in pack]
        prompt_shares = _split(int(reply.prompt_tokens or 0), weights)
        completion_shares = _split(int(reply.completion_tokens or 0), weights)
        for item, prompt, completion in zip(pack, prompt_shares, completion_shares, strict=True):
            item.prompt_tokens += prompt
            item.completion_tokens += completion
            item.latency_ms += float(reply.latency_s or 0.0) * 1000.0
            item.attempts += int(getattr(reply, "attempts", 1) or 1)

    def _succeed(self, item: _Pending, analysis: ReviewAnalysis, *, repaired: bool) -> None:
        flags = [*item.flags, *analysis.flags, *([FLAG_REPAIRED_JSON] if repaired else [])]
        self._finish(
            item.index,
            ReviewOutcome(
                item.review.review_id,
                ok=True,
                sentiment=analysis.sentiment,
                categories=list(analysis.categories),
                summary=analysis.summary,
                confidence=analysis.confidence,
                language=analysis.language,
                flags=list(dict.fromkeys(flags)),
                **self._usage(item),
            ),
        )

    def _fail(
        self,
        item: _Pending,
        reason: str,
        detail: str | None,
        *,
        raw: str | None = None,
        status: int | None = None,
    ) -> None:
        self._finish(
            item.index,
            ReviewOutcome(
                item.review.review_id,
                ok=False,
                reason=reason,
                detail=detail,
                raw_reply=raw[:MAX_RAW_REPLY_CHARS] if raw else None,
                http_status=status,
                flags=list(dict.fromkeys(item.flags)),
                **self._usage(item),
            ),
        )

    def _usage(self, item: _Pending) -> dict[str, Any]:
        return {
            "attempts": item.attempts,
            "prompt_tokens": item.prompt_tokens,
            "completion_tokens": item.completion_tokens,
            "latency_ms": round(item.latency_ms, 3),
            "cost_usd": self.prices.cost(self.settings.model, item.prompt_tokens, item.completion_tokens),
        }

    def _finish(self, index: int, outcome: ReviewOutcome) -> None:
        if index in self.outcomes:  # a bug, never a provider behaviour: do not report twice
            log.error("Review %s already has an outcome; ignoring a second one", outcome.review_id)
            return
        self.outcomes[index] = outcome
        if self.on_outcome is not None:
            self.on_outcome(outcome)


def _review_id(item: _Pending) -> str:
    return item.review.review_id


def _split(total: int, weights: list[int]) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights`` that add up exactly (largest remainder)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    shares = [int(x) for x in exact]
    leftovers = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in leftovers[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _about_response_format(exc: BadRequest) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text or "response format" in text


def _first_leaf(group: BaseExceptionGroup | None) -> Any:
    while group is not None:
        first = group.exceptions[0]
        if not isinstance(first, BaseExceptionGroup):
            return first
        group = first
    return None
