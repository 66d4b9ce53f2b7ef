"""The deterministic "model": read our prompt's fences and answer with a lexicon analysis.

Understands the wire contract of ``docs/contracts.md``: a ``<taxonomy>[...]</taxonomy>`` fence in
any message and a ``<reviews>[{"id", "text"}...]</reviews>`` fence in the last user message. Review
text is only ever data here: an instruction inside a review changes nothing but its word counts.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from reviewlens.simulator.lexicon import DEFAULT_TAXONOMY, categorize

SUMMARY_MAX_WORDS = 50
_SUMMARY_MIN_WORDS = 12  # keep adding sentences until the summary says something
_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_OTHER_LETTER = re.compile(r"[^\W\d_A-Za-z]")


@dataclass(frozen=True)
class Prompt:
    """What the simulator understood of a request's messages."""

    taxonomy: tuple[str, ...]
    reviews: tuple[tuple[Any, str], ...] | None  # (id exactly as sent, text); None = no fence
    text: str  # the last user message: the single review when there is no fence

    @property
    def packed(self) -> bool:
        return self.reviews is not None

    @property
    def review_ids(self) -> list[str]:
        return [str(rid) for rid, _ in self.reviews] if self.reviews is not None else []

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.reviews] if self.reviews is not None else [self.text]


def message_text(message: dict) -> str:
    """A message's content as text (plain string or a list of ``{"type": "text"}`` parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _fenced(text: str, tag: str, valid: Any) -> Any:
    """The JSON value right after the last ``<tag>`` that decodes and passes ``valid``, else None."""
    opening = f"<{tag}>"
    pos = text.rfind(opening)
    while pos != -1:
        start = _WS.match(text, pos + len(opening)).end()  # type: ignore[union-attr]
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            value = None
        if value is not None and valid(value):
            return value
        pos = text.rfind(opening, 0, pos)
    return None


def _is_taxonomy(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _is_reviews(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, dict) and "id" in v and isinstance(v.get("text"), str) for v in value
    )


def parse_prompt(messages: list[dict]) -> Prompt:
    """Find the taxonomy, the fenced reviews and the last user message."""
    texts = [message_text(m) for m in messages]
    taxonomy: tuple[str, ...] = DEFAULT_TAXONOMY
    for text in reversed(texts):
        if "<taxonomy>" in text:
            found = _fenced(text, "taxonomy", _is_taxonomy)
            if found is not None:
                taxonomy = tuple(found)
                break
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    last_user = users[-1] if users else (texts[-1] if texts else "")
    raw = _fenced(last_user, "reviews", _is_reviews) if "<reviews>" in last_user else None
    reviews = tuple((r["id"], r["text"]) for r in raw) if raw is not None else None
    return Prompt(taxonomy=taxonomy, reviews=reviews, text=last_user)


@cache
def _vader() -> SentimentIntensityAnalyzer:
    # Loading the lexicon costs ~25 ms; do it once per process.
    return SentimentIntensityAnalyzer()


def sentiment_of(compound: float) -> str:
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


def confidence_of(compound: float) -> float:
    """Higher for a strong compound score; a neutral verdict is most confident near 0."""
    strength = abs(compound)
    if strength < 0.05:
        return round(0.7 - strength * 4, 2)
    return round(min(0.99, 0.5 + strength / 2), 2)


def summarize(text: str, max_words: int = SUMMARY_MAX_WORDS) -> str:
    """Extractive summary: the first sentence(s), cut at a word boundary to at most ``max_words``."""
    words: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        words.extend(sentence.split())
        if len(words) >= _SUMMARY_MIN_WORDS:
            break
    if len(words) <= max_words:
        return " ".join(words)
    return " ".join(words[:max_words]).rstrip(",;:-") + "..."


def language_of(text: str) -> str:
    """Crude guess: "en" when nearly all letters are ASCII, else "und" (undetermined)."""
    ascii_letters = len(_ASCII_LETTER.findall(text))
    other_letters = len(_OTHER_LETTER.findall(text))
    if ascii_letters == 0 or ascii_letters < 9 * other_letters:
        return "und"
    return "en"


@lru_cache(maxsize=16384)
def analyze_text(text: str, taxonomy: tuple[str, ...]) -> tuple[str, tuple[str, ...], str, float, str]:
    """(sentiment, categories, summary, confidence, language) of one review; cached, it is pure."""
    compound = _vader().polarity_scores(text)["compound"] if text.strip() else 0.0
    return (
        sentiment_of(compound),
        tuple(categorize(text, taxonomy)),
        summarize(text),
        confidence_of(compound),
        language_of(text),
    )


def answer(prompt: Prompt) -> dict[str, Any]:
    """The honest reply object: ``{"results": [...]}`` for fenced reviews, else the single object."""
    if prompt.reviews is None:
        sentiment, categories, summary, _, _ = analyze_text(prompt.text, prompt.taxonomy)
        return {"sentiment": sentiment, "categories": list(categories), "summary": summary}
    results = []
    for rid, text in prompt.reviews:
        sentiment, categories, summary, confidence, language = analyze_text(text, prompt.taxonomy)
        results.append(
            {
                "id": rid,
                "sentiment": sentiment,
                "categories": list(categories),
                "summary": summary,
                "confidence": confidence,
                "language": language,
            }
        )
    return {"results": results}


def render(payload: dict[str, Any]) -> str:
    """The reply content as a model would write it (compact JSON, non-ASCII kept)."""
    return json.dumps(payload, ensure_ascii=False)


def truncate_to_tokens(content: str, max_tokens: int, count: Any) -> str:
    """Cut ``content`` so that ``count(content) <= max_tokens`` (a reply stopped by ``max_tokens``)."""
    total = count(content)
    if total <= max_tokens:
        return content
    cut = math.floor(len(content) * max_tokens / total)
    while cut > 0 and count(content[:cut]) > max_tokens:
        cut = math.floor(cut * 0.95)
    return content[:cut]
