"""The retry policy: which failures are repeated, how long to wait, and where it stops."""

from __future__ import annotations

import email.utils
import random

import pytest

from reviewlens.config import LLMSettings
from reviewlens.rate_budget import RateLimitHeaders, parse_duration
from reviewlens.retry import RetryPolicy, parse_retry_after, should_retry_status


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == pytest.approx(0.25)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


def test_retry_after_absent_or_garbage_is_none() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "1"}) == 1.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        *[(None, True), (408, True), (409, True), (429, True), (500, True), (503, True)],
        *[(400, False), (401, False), (403, False), (404, False), (422, False), (418, False)],
    ],
)
def test_should_retry_status(status: int | None, expected: bool) -> None:
    assert should_retry_status(status) is expected


def test_x_should_retry_header_overrides_the_status() -> None:
    assert should_retry_status(400, {"x-should-retry": "true"}) is True
    assert should_retry_status(503, {"x-should-retry": "false"}) is False


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(1, 503, {}) and policy.should_retry(2, 503, {})
    assert not policy.should_retry(3, 503, {})
    assert not policy.should_retry(1, 401, {})


def test_wait_follows_server_advice_else_full_jitter_backoff() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=4.0, max_retry_after_s=60, rng=random.Random(1))
    assert policy.wait_s(1, {"retry-after-ms": "1200"}) == pytest.approx(1.2)
    # Absurd advice (an hour) falls back to capped backoff.
    assert policy.wait_s(1, {"retry-after": "3600"}) <= 0.5
    waits = [policy.wait_s(attempt, {}) for attempt in range(1, 10) for _ in range(20)]
    assert all(0.0 <= w <= 4.0 for w in waits)
    assert max(policy.wait_s(8, {}) for _ in range(50)) > 2.0  # exponential growth, capped at 4


def test_policy_from_settings() -> None:
    settings = LLMSettings(base_url="http://x/v1", max_attempts=4, review_deadline_s=30)
    policy = RetryPolicy.from_settings(settings, initial_backoff_s=0.01)
    assert (policy.max_attempts, policy.deadline_s, policy.initial_backoff_s) == (4, 30, 0.01)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("0s", 0.0)],
)
def test_parse_openai_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage() -> None:
    assert parse_duration("soon") is None
    assert parse_duration("1x") is None
    assert parse_duration(None) is None


def test_rate_limit_headers_say_when_the_provider_is_full() -> None:
    info = RateLimitHeaders.parse(
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "5000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert info.limit_requests == 600 and info.reset_tokens_s == 360
    # "reset" is until the bucket is full; one more request needs only 60/600 s.
    assert info.exhausted_for_s() == pytest.approx(0.1)
    assert RateLimitHeaders.parse({"x-ratelimit-remaining-requests": "3"}).exhausted_for_s() == 0.0
