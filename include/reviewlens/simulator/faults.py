"""Fault injection: which misbehaviour a request gets, and what that misbehaviour looks like.

Every fault kind is one entry of ``FAULT_KINDS``: a name, which requests it can apply to, and a
function that turns the honest answer into a ``FaultEffect`` (an error reply, an extra delay, a
mangled content, or a broken transport). The server applies effects without knowing the kinds.
Draws come from a per-request RNG derived from the seed, so a run is reproducible.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reviewlens.simulator import wire
from reviewlens.simulator.limits import retry_after_headers

if TYPE_CHECKING:
    from reviewlens.simulator.config import FaultConfig

Transport = Literal["reset", "cut"]


@dataclass
class FaultContext:
    """What a fault may look at: the honest payload and which of its results are targeted."""

    rng: random.Random
    faults: FaultConfig
    payload: dict[str, Any]  # {"results": [...]} when packed, else the single object
    packed: bool
    stream: bool
    targets: list[int] = field(default_factory=list)  # indices into payload["results"]

    def pick(self) -> int:
        """Index of the result to act on: the first targeted one, else a random one."""
        if self.targets:
            return self.targets[0]
        return self.rng.randrange(len(self.payload["results"]))

    def affected(self) -> list[int]:
        """Results to spoil: the targeted ones, else all of them."""
        return self.targets or list(range(len(self.payload["results"])))


@dataclass
class FaultEffect:
    """What the server does instead of (or on top of) the honest reply."""

    error: tuple[int, dict, dict[str, str]] | None = None  # status, body, extra headers
    content: str | None = None  # replaces the reply content
    delay_s: float = 0.0  # added before answering
    transport: Transport | None = None  # "reset": abort mid-body; "cut": end stream before [DONE]


@dataclass(frozen=True)
class FaultKind:
    """One kind of misbehaviour; ``needs`` restricts it to packed (fenced) or streaming requests."""

    name: str
    effect: Callable[[FaultContext], FaultEffect]
    needs: Literal["any", "packed", "stream"] = "any"

    def applies(self, *, packed: bool, stream: bool) -> bool:
        return (
            self.needs == "any" or (self.needs == "packed" and packed) or (self.needs == "stream" and stream)
        )


def _rate_limit_burst(ctx: FaultContext) -> FaultEffect:
    seconds = ctx.faults.retry_after_s
    body = wire.error_body(
        "Rate limit reached (simulated burst). Please try again later.",
        type_="requests",
        code="rate_limit_exceeded",
    )
    return FaultEffect(error=(429, body, retry_after_headers(seconds)))


def _server_error(ctx: FaultContext) -> FaultEffect:
    status = ctx.rng.choice(ctx.faults.server_error_statuses)
    message = {
        502: "Bad gateway.",
        503: "The engine is currently overloaded, please try again later.",
    }.get(status, "The server had an error while processing your request. Sorry about that!")
    return FaultEffect(error=(status, wire.error_body(message, type_="server_error"), {}))


def _hang(ctx: FaultContext) -> FaultEffect:
    return FaultEffect(delay_s=ctx.faults.hang_s)


def _not_json(ctx: FaultContext) -> FaultEffect:
    first = ctx.payload["results"][0] if ctx.packed and ctx.payload["results"] else ctx.payload
    sentiment = first.get("sentiment", "neutral")
    prose = ctx.rng.choice(
        [
            f"Sure! Overall the customer sounds {sentiment}. Let me know if you need anything else.",
            f"I'm sorry, but I can only give a short answer: the review is mostly {sentiment}.",
            f"Here is my analysis. Sentiment: {sentiment}. Categories: none in particular.",
        ]
    )
    return FaultEffect(content=prose)


def _wrong_schema(ctx: FaultContext) -> FaultEffect:
    payload = copy.deepcopy(ctx.payload)
    if ctx.rng.random() < 0.5:
        # Wrong values: an off-list sentiment, categories as a string, confidence as a word.
        items = [payload["results"][i] for i in ctx.affected()] if ctx.packed else [payload]
        for item in items:
            item["sentiment"] = "very good"
            item["categories"] = ", ".join(item.get("categories") or ["other"])
            item["confidence"] = "high"
            item.pop("summary", None)
    elif ctx.packed:
        payload = {"analysis": payload["results"]}  # wrong top-level key
    else:
        payload = {"label": payload["sentiment"], "topics": payload["categories"]}
    return FaultEffect(content=json.dumps(payload, ensure_ascii=False))


def _wrapped_json(ctx: FaultContext) -> FaultEffect:
    style = ctx.rng.choice(["fenced", "trailing_commas", "single_quotes"])
    text = json.dumps(ctx.payload, ensure_ascii=False, indent=2)
    if style == "single_quotes":
        # A Python-literal rendering: single-quoted strings, still ast.literal_eval-able.
        return FaultEffect(content=repr(ctx.payload))
    if style == "trailing_commas":
        text = text.replace("\n  ]", ",\n  ]").replace("\n}", ",\n}")
    return FaultEffect(
        content=f"Here is the analysis you asked for:\n\n```json\n{text}\n```\n\nHope this helps!"
    )


def _drop_id(ctx: FaultContext) -> FaultEffect:
    payload = copy.deepcopy(ctx.payload)
    del payload["results"][ctx.pick()]
    return FaultEffect(content=json.dumps(payload, ensure_ascii=False))


def _extra_id(ctx: FaultContext) -> FaultEffect:
    payload = copy.deepcopy(ctx.payload)
    invented = dict(payload["results"][ctx.pick()])
    invented["id"] = f"extra-{ctx.rng.getrandbits(32):08x}"
    payload["results"].append(invented)
    return FaultEffect(content=json.dumps(payload, ensure_ascii=False))


_OTHER_SENTIMENT = {"positive": "negative", "negative": "positive", "neutral": "positive"}


def _dup_id(ctx: FaultContext) -> FaultEffect:
    # The same id twice with conflicting answers: a consumer cannot tell which one is meant.
    payload = copy.deepcopy(ctx.payload)
    twin = dict(payload["results"][ctx.pick()])
    twin["sentiment"] = _OTHER_SENTIMENT.get(twin.get("sentiment"), "neutral")
    payload["results"].append(twin)
    return FaultEffect(content=json.dumps(payload, ensure_ascii=False))


def _reset(ctx: FaultContext) -> FaultEffect:
    return FaultEffect(transport="reset")


def _stream_cut(ctx: FaultContext) -> FaultEffect:
    return FaultEffect(transport="cut")


# Order matters only when several kinds fire for one request: the first one listed wins.
FAULT_KINDS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        FaultKind("rate_limit_burst", _rate_limit_burst),
        FaultKind("server_error", _server_error),
        FaultKind("hang", _hang),
        FaultKind("reset", _reset),
        FaultKind("stream_cut", _stream_cut, needs="stream"),
        FaultKind("not_json", _not_json),
        FaultKind("wrong_schema", _wrong_schema),
        FaultKind("wrapped_json", _wrapped_json),
        FaultKind("drop_id", _drop_id, needs="packed"),
        FaultKind("extra_id", _extra_id, needs="packed"),
        FaultKind("dup_id", _dup_id, needs="packed"),
    )
}


class FaultInjector:
    """Decides, per request, which fault (if any) fires; counts toward ``first_n_requests``/``max_faults``."""

    def __init__(self, faults: FaultConfig) -> None:
        self.faults = faults
        self.eligible_seen = 0
        self.injected = 0
        self._match = faults.match_text.casefold() if faults.match_text else None

    def targets(self, review_ids: list[str], texts: list[str]) -> list[int] | None:
        """Indices of the request's targeted reviews; None when the request is not eligible at all."""
        f = self.faults
        if f.only_review_ids is None and self._match is None:
            return []
        ids = review_ids or [""] * len(texts)  # an unfenced request has one text and no id
        hits = [
            i
            for i, (rid, text) in enumerate(zip(ids, texts, strict=False))
            if (f.only_review_ids is None or rid in f.only_review_ids)
            and (self._match is None or self._match in text.casefold())
        ]
        return hits or None

    def draw(
        self, rng: random.Random, *, review_ids: list[str], texts: list[str], packed: bool, stream: bool
    ) -> tuple[str | None, list[int]]:
        """Return (fault kind or None, targeted result indices)."""
        f = self.faults
        if not f.rates:
            return None, []
        targets = self.targets(review_ids, texts)
        if targets is None:
            return None, []
        if f.first_n_requests is not None and self.eligible_seen >= f.first_n_requests:
            return None, []
        self.eligible_seen += 1
        if f.max_faults is not None and self.injected >= f.max_faults:
            return None, []
        chosen = None
        # One uniform per kind, always in registry order, so each kind's sequence is independent.
        for name, kind in FAULT_KINDS.items():
            fired = rng.random() < f.rates.get(name, 0.0)
            if fired and chosen is None and kind.applies(packed=packed, stream=stream):
                chosen = name
        if chosen is not None:
            self.injected += 1
        return chosen, targets
