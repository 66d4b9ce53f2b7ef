"""Turn a list of reviews into exactly one ``ReviewOutcome`` per review, via an OpenAI-compatible client.

Flow for one call of ``analyze_reviews``:

1. Reviews are taken in order, lazily: each body is cleaned (``prompts.prepare_review_text``) and
   token-counted only when the pack it belongs to is about to start; an unusable one fails at once
   (``empty_text``) without any request.
2. The prepared reviews are packed ``settings.reviews_per_request`` (K) at a time (``iter_packs``:
   never the same review id twice in one pack), and each pack is one task. A sliding window keeps
   at most ``max(64, 2 × max_concurrency)`` pack tasks alive and tops it up as they end: enough to
   keep the client's every slot busy, without preparing 45,000 reviews and creating
   45,000 tasks before the first request (2.5 s of start-up measured in ``docs/benchmarks.md``). The
   client bounds concurrency and paces the rate budget itself.
3. Unless the run is seeded (``EndpointState.from_dict`` of what ``preflight.prove_endpoint`` learned
   in the DAG's ``check_setup``), the first request of a run goes out alone: it proves the API key
   (a wrong key costs exactly one request) and, in ``auto`` mode, whether the endpoint accepts
   ``response_format`` — if it answers ``BadRequest`` about it, the run switches to prompt-only JSON
   once, for every later request. A seeded run already knows both and opens its whole window at once.
4. Each reply is parsed per review. A review whose item is invalid JSON or breaks the schema is
   re-asked once, singly, quoting the error. A review missing from (or duplicated in) a packed reply
   is retried once in a request of its own. Whatever still fails becomes a failed outcome with its
   reason and the raw reply.
5. ``AuthenticationFailed`` ends the run: every review not yet final gets ``auth_failed`` (including
   those the window had not reached yet), then the error is re-raised so the chunk stops.

Reviews are sent under short per-request aliases ("1", "2", …), not their source ids: the ids cost
tokens twice (prompt and reply), may be long (UUIDs), and are untrusted source data too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from reviewlens.config import LLMSettings
from reviewlens.errors import AuthenticationFailed, BadRequest, BadReviewInput, ProviderError
from reviewlens.gc_tuning import quiet_gc
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
# Pack tasks alive at once: at least this many, and twice the client's concurrency, so that a slot
# freed by a reply always finds the next request ready while its own review text is prepared late.
MIN_PACKS_AHEAD = 64
RESPONSE_FORMATS = ("json_schema", "json_object", "none")
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

    Across processes the state travels as the plain dict of ``as_dict`` (the DAG's XCom from
    ``check_setup`` to every ``analyze_chunk``) and comes back with ``from_dict``, so that the preflight
    and the chunks share one format. ``model``, ``base_url`` and ``checked_at`` say which endpoint the
    facts were learned from and when; none of it is secret.
    """

    response_format: str | None = None
    checked: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    model: str | None = None
    base_url: str | None = None
    checked_at: str | None = None  # ISO 8601 UTC instant of the proof
    # The proof's output tokens as a share of its max_tokens: seeds the client's reservations
    # (``ChatClient(expected_output_ratio=...)``) so a chunk's first wave does not reserve max_tokens.
    output_ratio: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON-serialisable facts (never a key): ``from_dict`` reads them back."""
        return {
            "key_verified": self.checked,
            "response_format": self.response_format,
            "model": self.model,
            "base_url": self.base_url,
            "checked_at": self.checked_at,
            "output_ratio": self.output_ratio,
        }

    @classmethod
    def proven(cls, settings: LLMSettings, response_format: str | None) -> EndpointState:
        """The state after a proof against ``settings``' endpoint: key accepted, format known."""
        return cls(
            response_format=response_format,
            checked=True,
            model=settings.model,
            base_url=_same_url(settings.base_url),
            checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, settings: LLMSettings | None = None) -> EndpointState:
        """The state ``as_dict`` exported, or a fresh (unproven) one when it cannot be trusted.

        With ``settings``, facts learned from another base URL or model are ignored: the run then
        proves the endpoint itself, exactly as without a seed. An explicit ``response_format``
        setting always wins over a learned one; only ``auto`` takes the learned kind. Anything
        malformed (an old XCom, a hand-made dict) also gives a fresh state rather than an error.
        """
        if not isinstance(data, Mapping):
            return cls()
        if settings is not None:
            if data.get("base_url") is not None and data["base_url"] != _same_url(settings.base_url):
                log.info("Endpoint facts were learned from another base URL; proving the endpoint again")
                return cls()
            if data.get("model") is not None and data["model"] != settings.model:
                log.info("Endpoint facts were learned for model %r; proving it again", data["model"])
                return cls()
        kind = data.get("response_format")
        if kind not in RESPONSE_FORMATS or (settings is not None and settings.response_format != "auto"):
            kind = None  # _Run falls back to the setting (or json_schema in auto mode)
        return cls(
            response_format=kind,
            checked=data.get("key_verified") is True,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            base_url=data.get("base_url") if isinstance(data.get("base_url"), str) else None,
            checked_at=data.get("checked_at") if isinstance(data.get("checked_at"), str) else None,
            output_ratio=_ratio(data.get("output_ratio")),
        )


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


def iter_packs(items: Iterable[T], per_request: int, key: Callable[[T], str]) -> Iterator[list[T]]:
    """Yield packs of at most ``per_request`` items, in order, never two equal ``key``s in one pack.

    Lazy: a full pack is yielded before the next item is drawn, so a generator behind ``items``
    (the analyzer's preparation of review texts) runs only as far as the packs asked for. A pack is
    cut early only when the next item repeats a key, which is the one case that draws one item ahead.
    """
    size = max(1, per_request)
    current: list[T] = []
    seen: set[str] = set()
    for item in items:
        item_key = key(item)
        if item_key in seen:
            yield current
            current, seen = [], set()
        current.append(item)
        seen.add(item_key)
        if len(current) == size:
            yield current
            current, seen = [], set()
    if current:
        yield current


def plan_packs(items: Sequence[T], per_request: int, key: Callable[[T], str]) -> list[list[T]]:
    """Cut items into packs of at most ``per_request``, in order, never two equal ``key``s in one pack."""
    return list(iter_packs(items, per_request, key))


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
    Every other provider or reply problem becomes a failed outcome, never an exception. A seeded
    ``endpoint_state`` (``checked`` True) lets the first requests go out together.
    """
    run = _Run(client, settings, taxonomy, prices, on_outcome, endpoint_state or EndpointState())
    with quiet_gc():  # a full collection over a big run stalls the loop past the budget's tolerance
        return await run.execute(reviews, max_review_chars)


async def send_one(
    client: ChatClientLike,
    text: str,
    *,
    settings: LLMSettings,
    taxonomy: Taxonomy,
    state: EndpointState,
    alias: str = "1",
) -> tuple[ChatReplyLike, ItemResult]:
    """Send one prepared review alone, exactly as a run sends its first request, and parse the reply.

    Same messages, ``response_format`` handling and ``max_tokens`` as ``analyze_reviews``, and the
    same learning into ``state`` (key proven, json_schema accepted or dropped for "none"), but no
    re-ask and no single retry: ``preflight.prove_endpoint`` uses it to learn what a chunk would,
    at the cost of one request. ``ProviderError``s are raised as the client raised them.
    """
    sender = _Sender(client, settings, taxonomy, state)
    reply = await sender.send(build_messages([(alias, text)], taxonomy), 1)
    return reply, parse_reply(reply.content, [alias], taxonomy).items[alias]


class _Sender:
    """Sends a run's requests: the first alone until the key is proven, ``response_format`` learned once."""

    def __init__(
        self, client: ChatClientLike, settings: LLMSettings, taxonomy: Taxonomy, state: EndpointState
    ) -> None:
        self.client = client
        self.settings = settings
        self.taxonomy = taxonomy
        self.state = state
        self.auto = settings.response_format == "auto"
        if state.response_format is None:
            state.response_format = "json_schema" if self.auto else settings.response_format

    async def send(self, messages: list[dict[str, Any]], reviews: int) -> ChatReplyLike:
        """Send one request; until the key is proven, one at a time (see the module docstring)."""
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
        self.settings = settings
        self.taxonomy = taxonomy
        self.prices = prices
        self.on_outcome = on_outcome
        self.sender = _Sender(client, settings, taxonomy, state)
        self.outcomes: dict[int, ReviewOutcome] = {}
        # Reviews prepared and not yet final (dropped once final, so the run holds only its window).
        self.live: dict[int, _Pending] = {}
        self.tasks: asyncio.TaskGroup | None = None

    async def execute(self, reviews: Sequence[Review], max_review_chars: int) -> list[ReviewOutcome]:
        try:
            async with asyncio.TaskGroup() as tasks:
                self.tasks = tasks
                await self._feed(reviews, max_review_chars)
        except BaseExceptionGroup as group:
            auth = _first_leaf(group.subgroup(AuthenticationFailed))
            if auth is None:
                other = _first_leaf(group)
                raise (other if other is not None and len(group.exceptions) == 1 else group) from None
            # Every review not yet final, started or not: the key is gone for all of them.
            for index, review in enumerate(reviews):
                if index not in self.outcomes:
                    self._fail(self._item(index, review), "auth_failed", str(auth), status=auth.status)
            raise auth from None
        for index, review in enumerate(reviews):  # cannot happen by construction; keeps "one outcome
            if index not in self.outcomes:  # per review" unconditional
                log.error("Review %s ended without an outcome; recording it as failed", review.review_id)
                self._fail(
                    self._item(index, review),
                    "missing_in_reply",
                    "the analyzer produced no outcome for this review",
                )
        return [self.outcomes[i] for i in range(len(reviews))]

    async def _feed(self, reviews: Sequence[Review], max_review_chars: int) -> None:
        """Start one task per pack, at most ``window`` alive at once, topped up as they end.

        A sliding window, no batch barrier: pack tasks end one by one, and the feeder tops the
        window up again once an eighth of it has ended, so at least 7/8 of it (1.75 ×
        ``max_concurrency``) is always alive and the client never starves. Waking once per eighth
        rather than once per pack (a semaphore) saves ~4 µs per pack: 0.2 s of CPU over 45,000
        packs, measured with an instant client. Re-asks and single retries are spawned into the
        same task group outside the window (they are few and must never wait behind new work). The
        feeder runs in the task group's body, so an ``AuthenticationFailed`` in any task cancels it
        at once: nothing more is prepared or sent.
        """
        window = max(MIN_PACKS_AHEAD, 2 * self.settings.max_concurrency)
        low = window - max(1, window // 8)
        room = asyncio.Event()
        alive = 0

        def ended(_: asyncio.Task[None]) -> None:
            nonlocal alive
            alive -= 1
            if alive <= low:
                room.set()

        prepared = self._prepare(reviews, max_review_chars)
        packs = iter_packs(prepared, self.settings.reviews_per_request, key=_review_id)
        for started, pack in enumerate(packs):
            if alive >= window:
                room.clear()
                await room.wait()
            alive += 1
            self._spawn(self._request(pack, first_try=True)).add_done_callback(ended)
            if started < window:
                # While the window fills, let each new task reach the wire before preparing the next
                # pack: the first request leaves after one pack's preparation, not the window's.
                await asyncio.sleep(0)

    def _prepare(self, reviews: Sequence[Review], max_review_chars: int) -> Iterator[_Pending]:
        """Clean and count each review as the feeder reaches it; an unusable one is final at once."""
        for index, review in enumerate(reviews):
            try:
                text, flags = prepare_review_text(review.body, max_review_chars)
            except BadReviewInput as exc:
                self._finish(
                    index, ReviewOutcome(review.review_id, ok=False, reason=exc.reason, detail=str(exc))
                )
                continue
            item = _Pending(index, review, text, flags, weight=max(1, count_tokens(text)))
            self.live[index] = item
            yield item

    def _item(self, index: int, review: Review) -> _Pending:
        """The review's accounting so far, or an empty one for a review the feeder never reached."""
        return self.live.get(index) or _Pending(index, review, "", [], weight=1)

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
            reply = await self.sender.send(messages, len(pack))
        except AuthenticationFailed:
            raise
        except ProviderError as exc:
            for item in pack:
                item.attempts += exc.attempts
                self._fail(item, exc.reason, str(exc), status=exc.status)
            return None
        self._charge(pack, reply)
        return reply

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        assert self.tasks is not None
        return self.tasks.create_task(coro)

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
        self.live.pop(index, None)
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


def _same_url(base_url: str) -> str:
    """A base URL as compared between a proof and a run (a trailing slash is no other endpoint)."""
    return base_url.rstrip("/")


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


def _ratio(value: Any) -> float | None:
    """A share in (0, 1], or None for anything else (an old or hand-made XCom)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value <= 1 else None
