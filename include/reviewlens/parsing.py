"""The one parser of model replies: raw content → one validated result (or error) per review id.

Every path (K = 1, packed, re-ask, streaming probe) goes through ``parse_reply``:

1. strict ``json.loads``;
2. if that fails, ``json_repair`` (code fences, prose around the JSON, trailing commas, single
   quotes, truncated output) — the reply is then marked ``repaired``;
3. otherwise every expected id fails with ``invalid_json``.

Accepted shapes: ``{"results": [...]}``, a bare array of items and, for K = 1, a bare single object
(with or without ``id``). Each item is validated on its own, so one bad item never fails the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import json_repair
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from reviewlens.taxonomy import Taxonomy

# Bump whenever the validation rules change what is stored: it is part of the analysis version.
SCHEMA_VERSION = "1"

MAX_SUMMARY_WORDS = 50
FLAG_SUMMARY_TRUNCATED = "summary_truncated"
FLAG_DROPPED_CATEGORIES = "dropped_categories"
FLAG_REPAIRED_JSON = "repaired_json"

ItemError = Literal["invalid_json", "schema_violation", "missing_in_reply"]
_SEPARATORS = re.compile(r"[\s\-]+")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][a-z0-9]{2,8})?$")


class ReviewAnalysis(BaseModel):
    """A validated analysis of one review, normalised for storage.

    - ``sentiment``: positive / neutral / negative, case and whitespace ignored.
    - ``categories``: lower-cased, spaces/hyphens → underscores, de-duplicated in order; a string
      counts as a comma-separated list, null as none. Ids outside the taxonomy (passed as validation context
      ``{"taxonomy": Taxonomy}``) are dropped and counted in ``dropped_categories`` — a model that
      invents a category still gave a usable sentiment and summary.
    - ``summary``: non-empty; whitespace collapsed. Decision: a summary over 50 words is **cut** at
      the 50th word and flagged ``summary_truncated`` instead of re-asked — a re-ask costs a full
      request for a few surplus words, and the first 50 words of a summary read fine.
    - ``confidence`` (0..1) and ``language`` (ISO 639 code) are optional metadata: an unusable value
      becomes None rather than failing the review.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    sentiment: Literal["positive", "neutral", "negative"]
    categories: list[str]
    summary: str = Field(min_length=1)
    confidence: float | None = None
    language: str | None = None
    flags: tuple[str, ...] = ()
    dropped_categories: int = 0

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"each result must be a JSON object, got {type(data).__name__}")
        taxonomy = (info.context or {}).get("taxonomy")
        # flags and counts are ours to set, never the model's.
        out = {k: v for k, v in data.items() if k not in ("flags", "dropped_categories")}
        flags: list[str] = []
        if isinstance(out.get("sentiment"), str):
            out["sentiment"] = out["sentiment"].strip().lower()
        # Values of the wrong shape are left as they are for the field types to reject, so that the
        # error message (quoted in the re-ask) names every bad field at once.
        categories = out.get("categories")
        if categories is None:
            categories = []
        if isinstance(categories, str):  # "quality, price" — a list written as text
            categories = categories.split(",")
        if isinstance(categories, list) and all(isinstance(c, str) for c in categories):
            categories, dropped = _categories(categories, taxonomy)
            out["dropped_categories"] = dropped
            if dropped:
                flags.append(FLAG_DROPPED_CATEGORIES)
        out["categories"] = categories
        summary = out.get("summary")
        if isinstance(summary, str):
            words = summary.split()
            if len(words) > MAX_SUMMARY_WORDS:
                words = words[:MAX_SUMMARY_WORDS]
                flags.append(FLAG_SUMMARY_TRUNCATED)
            out["summary"] = " ".join(words)
        out["confidence"] = _confidence(out.get("confidence"))
        out["language"] = _language(out.get("language"))
        out["flags"] = tuple(flags)
        return out


def _categories(values: list[str], taxonomy: Taxonomy | None) -> tuple[list[str], int]:
    kept: list[str] = []
    dropped = 0
    for raw in values:
        category = _SEPARATORS.sub("_", raw.strip().lower()).strip("_")
        if not category or category in kept:
            continue
        if taxonomy is not None and category not in taxonomy:
            dropped += 1
            continue
        kept.append(category)
    return kept, dropped


def _confidence(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None


def _language(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    code = value.strip().lower()
    return code if _LANGUAGE.match(code) else None


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one expected id: an analysis, or an error reason with a message."""

    review_id: str
    analysis: ReviewAnalysis | None = None
    reason: ItemError | None = None
    message: str | None = None
    raw: str | None = None  # the item's own JSON (for a re-ask), or the whole reply if unparseable

    @property
    def ok(self) -> bool:
        return self.analysis is not None


@dataclass(frozen=True)
class ParsedReply:
    """Per-id results of one reply, plus what was wrong with the id set as a whole."""

    items: dict[str, ItemResult]
    missing_ids: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    unexpected_ids: list[str] = field(default_factory=list)
    repaired: bool = False


def parse_reply(content: str | None, expected_ids: list[str], taxonomy: Taxonomy) -> ParsedReply:
    """Parse ``content`` into one ``ItemResult`` per id of ``expected_ids`` (never raises).

    Missing ids and ids present more than once with different answers (ambiguous) get reason
    ``missing_in_reply``; an id repeated with the identical answer is accepted. The
    caller retries those singly. Ids not asked for are listed in ``unexpected_ids`` and ignored.
    """
    data, repaired = _load(content or "")
    if data is None:
        return _all_failed(expected_ids, "invalid_json", "the reply is not JSON", content or "")
    raw_items, shape_error = _items(data, single=len(expected_ids) == 1)
    if shape_error:
        return _all_failed(expected_ids, "schema_violation", shape_error, content or "", repaired=repaired)

    expected = set(expected_ids)
    by_id: dict[str, list[Any]] = {}
    unexpected: list[str] = []
    for raw in raw_items:
        item_id = _item_id(raw, expected_ids)
        if item_id in expected:
            by_id.setdefault(item_id, []).append(raw)
        else:
            unexpected.append(str(item_id))

    items: dict[str, ItemResult] = {}
    missing: list[str] = []
    duplicates: list[str] = []
    for review_id in expected_ids:
        found = by_id.get(review_id, [])
        if not found:
            missing.append(review_id)
            items[review_id] = ItemResult(
                review_id, reason="missing_in_reply", message=f"id {review_id!r} is missing from the reply"
            )
        elif len(found) > 1 and len({json.dumps(f, sort_keys=True, default=str) for f in found}) == 1:
            # The same answer twice is not ambiguous: use it rather than pay for a single retry.
            items[review_id] = _validate(review_id, found[0], taxonomy)
        elif len(found) > 1:
            duplicates.append(review_id)
            items[review_id] = ItemResult(
                review_id,
                reason="missing_in_reply",
                message=f"id {review_id!r} appears {len(found)} times in the reply",
                raw=_compact(found),
            )
        else:
            items[review_id] = _validate(review_id, found[0], taxonomy)
    return ParsedReply(items, missing, duplicates, unexpected, repaired)


def _load(content: str) -> tuple[Any, bool]:
    try:
        data = json.loads(content)
    except ValueError:
        try:
            data = json_repair.loads(content)
        except Exception:  # json_repair is best effort; any failure just means "not JSON"
            return None, False
        if isinstance(data, dict | list) and data:
            return _unwrap_string(data), True
        return None, False
    return _unwrap_string(data), False


def _unwrap_string(data: Any) -> Any:
    # Some models return the JSON object encoded as a JSON string.
    if isinstance(data, str):
        try:
            inner = json.loads(data)
        except ValueError:
            return None
        return inner if isinstance(inner, dict | list) else None
    return data


def _items(data: Any, *, single: bool) -> tuple[list[Any], str | None]:
    if isinstance(data, dict) and "results" in data:
        results = data["results"]
        if isinstance(results, dict):
            results = [results]
        if not isinstance(results, list):
            return [], "'results' must be an array"
        return results, None
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict) and single:
        return [data], None
    return [], "the reply must be an object with a 'results' array"


def _item_id(raw: Any, expected_ids: list[str]) -> str | None:
    if isinstance(raw, dict) and "id" in raw and raw["id"] is not None:
        return str(raw["id"]).strip()
    # Without an id, an item can only be attributed when a single review was asked for.
    return expected_ids[0] if len(expected_ids) == 1 else None


def _validate(review_id: str, raw: Any, taxonomy: Taxonomy) -> ItemResult:
    try:
        analysis = ReviewAnalysis.model_validate(raw, context={"taxonomy": taxonomy})
    except ValidationError as exc:
        return ItemResult(review_id, reason="schema_violation", message=_describe(exc), raw=_compact(raw))
    return ItemResult(review_id, analysis=analysis, raw=_compact(raw))


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "item"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _all_failed(
    expected_ids: list[str], reason: ItemError, message: str, raw: str, *, repaired: bool = False
) -> ParsedReply:
    items = {rid: ItemResult(rid, reason=reason, message=message, raw=raw) for rid in expected_ids}
    return ParsedReply(items, repaired=repaired)
