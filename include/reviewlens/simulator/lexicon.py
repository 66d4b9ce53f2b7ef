"""Keyword lexicon that maps review text to taxonomy category ids.

Keywords are whole words; a trailing ``*`` makes a prefix (``deliver*`` matches "delivered").
A taxonomy id without an entry matches its own name and its words (``water_resistance`` matches
"water resistance" and words starting with "water" or "resistance"). ``other`` is never matched by
keyword: it is what a review gets when nothing else matched (if the taxonomy has it).
"""

from __future__ import annotations

import re
from functools import lru_cache

FALLBACK_CATEGORY = "other"

# One line per category: keywords separated by "|".
_KEYWORD_TABLE: dict[str, str] = {
    "shipping": "ship* | shipment* | courier* | tracking | dispatch* | postage | transit | carrier",
    "delivery": "deliver* | arriv* | late | delay* | on time | doorstep | package arrived | took weeks",
    "price": "price* | pricing | cost* | expensive | cheap* | overpriced | afford* | dollars | bucks",
    "value": "value | worth* | bang for | money | bargain | deal | for the price | ripoff | rip off",
    "quality": "quality | well made | cheaply made | flimsy | sturdy | solid | craftsmanship | defect*",
    "durability": "durab* | broke* | break* | lasted | last long | wore out | fell apart | tear* | torn",
    "sizing": "size* | sizing | too small | too big | runs small | runs large | smaller | larger",
    "fit": "fit | fits | fitted | fitting | snug | tight | loose | baggy",
    "comfort": "comfort* | uncomfortable | soft | cozy | cosy | itchy | cushion* | blister*",
    "appearance": "look* | color* | colour* | design* | style* | beautiful | pretty | ugly | gorgeous",
    "customer_service": "customer service | support | seller | refund* | rude | helpful staff | responsive"
    " | contacted | replied | agent",
    "returns": "return* | refund* | exchange* | send it back | sent it back | rma",
    "packaging": "packag* | box* | wrapp* | bubble wrap | crushed | dented | sealed | unboxing",
    "usability": "easy to use | easy to set | intuitive | confusing | instructions | setup | set up | manual",
    "performance": "perform* | speed | sluggish | snappy | lag* | powerful | freez* | crash* | works great",
    "battery": "battery | batteries | charging | charger* | recharg* | holds a charge | drain* | mah",
    "sound": "sound* | audio | volume | bass | noise* | noisy | loud* | quiet | speaker* | treble",
}
KEYWORDS: dict[str, tuple[str, ...]] = {
    category: tuple(k.strip() for k in table.split("|")) for category, table in _KEYWORD_TABLE.items()
}

# Used when a request carries no <taxonomy> fence.
DEFAULT_TAXONOMY: tuple[str, ...] = (*KEYWORDS, FALLBACK_CATEGORY)


def _pattern(keyword: str) -> str:
    words = keyword.rstrip("*").split()
    body = r"\s+".join(re.escape(w) for w in words)
    return body + (r"\w*" if keyword.endswith("*") else "")


def _keywords_for(category: str) -> tuple[str, ...]:
    known = KEYWORDS.get(category)
    if known is not None:
        return known
    words = [w for w in re.split(r"[_\W]+", category.lower()) if w]
    phrase = " ".join(words)
    # Unknown ids: the whole phrase, plus each meaningful word as a prefix.
    return (phrase, *(w + "*" for w in words if len(w) >= 4))


@lru_cache(maxsize=256)
def matchers(taxonomy: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """One compiled regex per category of the taxonomy (cached: taxonomies repeat across requests)."""
    out = []
    for category in taxonomy:
        if category == FALLBACK_CATEGORY:
            continue
        keywords = _keywords_for(category)
        if not keywords or not any(k.strip("*") for k in keywords):
            continue
        alternation = "|".join(_pattern(k) for k in keywords if k.strip("*"))
        out.append((category, re.compile(rf"\b(?:{alternation})\b", re.IGNORECASE)))
    return tuple(out)


def categorize(text: str, taxonomy: tuple[str, ...]) -> list[str]:
    """Taxonomy ids whose keywords occur in ``text``, in taxonomy order; ``["other"]`` when none do."""
    found = [category for category, regex in matchers(taxonomy) if regex.search(text)]
    if not found and FALLBACK_CATEGORY in taxonomy:
        return [FALLBACK_CATEGORY]
    return found
