"""The exception tree of ReviewLens; each error says what went wrong and what to do next.

Callers catch the level they care about: ``ProviderError`` for anything the LLM endpoint did,
``ConfigurationError`` for anything the operator has to fix before a run can spend money.
"""

from __future__ import annotations


class ReviewLensError(Exception):
    """Base class of every error raised by ReviewLens."""


class ConfigurationError(ReviewLensError):
    """A setting, connection, table or file is missing or malformed; fix it and run again."""


class ProviderError(ReviewLensError):
    """The LLM endpoint did not give a usable answer.

    ``status`` is the last HTTP status (None for network errors); ``reason`` is the failure code
    stored in ``review_analysis_failures`` (see ``FailureReason``).
    """

    reason = "provider_error"
    retryable = True

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class AuthenticationFailed(ProviderError):
    """The endpoint rejected the API key (401/403): check the connection's password; nothing is retried."""

    reason = "auth_failed"
    retryable = False


class BadRequest(ProviderError):
    """The endpoint refused the request as malformed (400/404/422): check model name and options."""

    reason = "bad_request"
    retryable = False


class RateLimited(ProviderError):
    """The endpoint kept answering 429 until the retry bound or the review's deadline ran out."""

    reason = "rate_limited"


class ProviderUnavailable(ProviderError):
    """The endpoint answered 5xx or the connection failed until the retry bound ran out."""

    reason = "provider_error"


class RequestTimeout(ProviderError):
    """The endpoint did not answer within the client timeout until the retry bound ran out."""

    reason = "timeout"


class BadReviewInput(ReviewLensError):
    """A review cannot be sent as it is (empty, too long, undecodable); it is recorded as failed."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
