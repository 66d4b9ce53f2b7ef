"""Rate budgets: keep the requests and tokens per minute of one provider account under its limits.

``make_budget`` picks the backend: ``PostgresBudget`` (shared by every chunk on every worker through
the warehouse; the default whenever a DSN is given), ``RedisBudget`` (shared, when a Redis URL is
given), else ``LocalBudget`` (this process only).
"""

from __future__ import annotations

from reviewlens.config import LLMSettings
from reviewlens.rate_budget.base import RateBudget, Reservation
from reviewlens.rate_budget.bucket import DEFAULT_BURST_S, DEFAULT_SAFETY, Limits
from reviewlens.rate_budget.headers import RateLimitHeaders, parse_duration
from reviewlens.rate_budget.local import LocalBudget
from reviewlens.rate_budget.postgres import PostgresBudget


def make_budget(
    settings: LLMSettings,
    dsn: str | None = None,
    redis_url: str | None = None,
    **options: object,
) -> RateBudget:
    """The budget of ``settings.account_key`` with its configured limits (or the provider's, once seen).

    ``redis_url`` selects Redis, else ``dsn`` selects Postgres, else the budget is local to this
    process. ``options`` go to the backend (``safety``, ``burst_s``, ``lease_s``, ``schema``, ...).
    """
    rpm, tpm = settings.requests_per_minute, settings.tokens_per_minute
    if redis_url:
        from reviewlens.rate_budget.redis import RedisBudget

        return RedisBudget(redis_url, settings.account_key, rpm, tpm, **options)  # type: ignore[arg-type]
    if dsn:
        return PostgresBudget(dsn, settings.account_key, rpm, tpm, **options)  # type: ignore[arg-type]
    return LocalBudget(rpm, tpm, **options)  # type: ignore[arg-type]


__all__ = [
    "DEFAULT_BURST_S",
    "DEFAULT_SAFETY",
    "Limits",
    "LocalBudget",
    "PostgresBudget",
    "RateBudget",
    "RateLimitHeaders",
    "Reservation",
    "make_budget",
    "parse_duration",
]
