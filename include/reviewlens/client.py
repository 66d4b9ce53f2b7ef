"""The chat-completions client: pooled connections, adaptive concurrency, rate budget, bounded retries.

Callers launch as many ``complete()`` coroutines as they like (``asyncio.gather``/``TaskGroup``);
the client decides how many are on the wire (``AdaptiveLimiter``), when each may go (``RateBudget``)
and whether a failure is repeated (``RetryPolicy``). A slot frees the moment a reply arrives, so
there is no batch barrier. The API key appears only in the ``Authorization`` header built here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

import httpx

from reviewlens.concurrency import AdaptiveLimiter
from reviewlens.config import LLMSettings
from reviewlens.errors import (
    AuthenticationFailed,
    BadRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestTimeout,
)
from reviewlens.rate_budget import LocalBudget, RateBudget
from reviewlens.retry import RetryPolicy, parse_retry_after
from reviewlens.tokens import count_message_tokens, count_tokens

log = logging.getLogger(__name__)

Transport = Literal["aiohttp", "httpx"]
# httpx's own pool costs ~10 ms CPU per request at 100 connections; aiohttp's ~0.2 ms.
DEFAULT_TRANSPORT: Transport = "aiohttp"
KEEPALIVE_EXPIRY_S = 30.0
CONNECT_TIMEOUT_S = 10.0
EXPECTED_OUTPUT_SMOOTHING = 0.2
USER_AGENT = "reviewlens"

T = TypeVar("T")
_Kind = Literal["auth", "bad_request", "rate_limited", "timeout", "unavailable"]
_ERRORS: dict[str, type[ProviderError]] = {
    "auth": AuthenticationFailed,
    "bad_request": BadRequest,
    "rate_limited": RateLimited,
    "timeout": RequestTimeout,
    "unavailable": ProviderUnavailable,
}


@dataclass(frozen=True)
class ChatReply:
    """One successful completion and what it cost."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    status: int
    attempts: int
    request_id: str | None
    finish_reason: str | None


@dataclass(frozen=True)
class StreamProbe:
    """What one streamed completion looked like: time to first token, speed and total latency."""

    content: str
    ttft_s: float
    tokens_per_s: float
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    attempts: int
    chunks: int


@dataclass
class ClientStats:
    """Counters of one client (plain integer increments: cheap on the hot path)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    transport_errors: int = 0
    timeouts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_status: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_status"] = {str(k): v for k, v in sorted(self.by_status.items())}
        return data


class _WaitedPastDeadline(Exception):
    """The deadline passed while waiting for a slot or the budget, before anything was sent."""


class _Failure(Exception):
    """One failed attempt, classified; turned into a ``ProviderError`` when the client gives up.

    ``status`` is None when no usable HTTP status explains the failure (network trouble, or a 200
    whose body was cut or unreadable), which the retry policy treats like a network error.
    """

    def __init__(
        self,
        kind: _Kind,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.headers: Mapping[str, str] = headers or {}

    def to_error(self, attempts: int) -> ProviderError:
        return _ERRORS[self.kind](
            f"{self} (after {attempts} attempt(s))", status=self.status, attempts=attempts
        )


def _classify_transport_error(exc: BaseException) -> _Failure:
    """Tell a timeout from a broken connection, whichever transport raised it."""
    cause = exc.__cause__
    timeout_types: tuple[type[BaseException], ...] = (httpx.TimeoutException, TimeoutError)
    # httpx-aiohttp maps a server disconnect to ConnectTimeout; the aiohttp cause tells the truth.
    is_timeout = isinstance(cause, TimeoutError) if cause is not None else isinstance(exc, timeout_types)
    name = type(cause or exc).__name__
    if is_timeout:
        return _Failure("timeout", f"the endpoint did not answer in time ({name})")
    return _Failure("unavailable", f"connection to the endpoint failed ({name})")


def _provider_message(response: httpx.Response) -> str:
    """The provider's own error text (OpenAI envelope or plain text), shortened."""
    try:
        payload = response.json()
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text or response.reason_phrase)[:500]


def _make_transport(
    settings: LLMSettings, transport: Transport | httpx.AsyncBaseTransport
) -> httpx.AsyncBaseTransport:
    if not isinstance(transport, str):
        return transport
    limits = httpx.Limits(
        max_connections=settings.max_concurrency,
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    if transport == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    raise ValueError(f"unknown transport {transport!r}: use 'aiohttp' or 'httpx'")


def _base_headers(settings: LLMSettings) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key.reveal()}"
    return headers


def _make_http(settings: LLMSettings, transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.base_url.rstrip("/") + "/",
        headers=_base_headers(settings),
        timeout=httpx.Timeout(settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s)),
        transport=transport,
        trust_env=False,  # proxies from the environment would silently reroute the provider's traffic
    )


class ChatClient:
    """An OpenAI-compatible chat client for one chunk: one connection pool, many concurrent calls.

    Until a reply proves the API key, calls go one at a time, so that a wrong key costs one request.
    ``key_verified=True`` skips that: pass it when the key was proven just before by a real chat
    completion (``preflight.prove_endpoint``, run by the DAG's ``check_setup``), and the chunk opens
    its whole window at once. A 401/403 still latches: every call not yet on the wire fails at once
    without sending, so a key revoked after the proof costs at most the requests already in flight.
    """

    def __init__(
        self,
        settings: LLMSettings,
        budget: RateBudget | None = None,
        *,
        transport: Transport | httpx.AsyncBaseTransport = DEFAULT_TRANSPORT,
        policy: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | None = None,
        key_verified: bool = False,
        expected_output_ratio: float | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy.from_settings(settings)
        self._owns_budget = budget is None
        self.budget = budget or LocalBudget(settings.requests_per_minute, settings.tokens_per_minute)
        # With a known rate the budget paces the sends, so the window starts open (slow start would
        # only idle the first round trips); without one, slow start finds the provider's load.
        paced = not self.budget.limits.unlimited
        self.limiter = limiter or AdaptiveLimiter(
            settings.max_concurrency, initial=settings.max_concurrency if paced else None
        )
        self.stats = ClientStats()
        self._transport = _make_transport(settings, transport)
        self._http = _make_http(settings, self._transport)
        # The hot path (``complete``) hands prepared ``httpx.Request``s straight to the transport: the
        # client's per-request machinery (header merging, auth and redirect flows, and above all the
        # cookie jar, ~0.2 ms per reply) does nothing for a JSON API call. See docs/benchmarks.md.
        self._post_headers = {**_base_headers(settings), "Content-Type": "application/json"}
        # Absolute, pre-parsed URLs: httpx would otherwise parse and join the relative path per request.
        self._chat_url = httpx.URL(settings.base_url.rstrip("/") + "/chat/completions")
        self._models_url = httpx.URL(settings.base_url.rstrip("/") + "/models")
        self._auth_failure: str | None = None
        # A reply other than 401/403 (or a preflight proof just before, ``key_verified``) has proven
        # the key; until then, one request at a time behind the gate.
        self._verified = key_verified
        self._gate = asyncio.Lock()
        # Output tokens as a share of ``max_tokens`` (moving average of real replies): a share, not a
        # count, so that what one size of request taught (the preflight's single review) carries over
        # to packs of K. Seeded from the preflight, the first wave of a chunk reserves what replies
        # really cost instead of ``max_tokens`` each (which slowed a token-limited start for seconds).
        self._expected_ratio: float | None = expected_output_ratio

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (and the budget if this client created it)."""
        await self._http.aclose()
        if self._owns_budget:
            await self.budget.aclose()

    def expected_output_tokens(self, max_tokens: int) -> int:
        """Output tokens to reserve: the moving average of real replies, capped by ``max_tokens``."""
        if self._expected_ratio is None:
            return max_tokens
        return min(max_tokens, math.ceil(self._expected_ratio * max_tokens) + 1)

    @property
    def expected_output_ratio(self) -> float | None:
        """What replies have cost so far, as a share of their ``max_tokens`` (None before any)."""
        return self._expected_ratio

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> ChatReply:
        """Send one chat completion, retrying inside; raise a ``ProviderError`` subclass on giving up.

        ``deadline`` is a ``time.monotonic()`` instant (default: now + ``review_deadline_s``).
        """
        max_tokens = max_tokens or self.settings.max_output_tokens
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.settings.temperature,
        }
        if response_format is not None:
            body["response_format"] = response_format
        prompt_tokens = count_message_tokens(messages)

        encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

        async def send(timeout: float) -> tuple[ChatReply, int]:
            started = time.monotonic()
            response = await self._post(encoded, timeout)
            self._check_status(response)
            try:
                payload = json.loads(response.content)
                choice = payload["choices"][0]
                usage = payload.get("usage") or {}
                content = choice["message"].get("content") or ""
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise _Failure("unavailable", "the endpoint sent an unreadable body") from None
            completion = int(usage.get("completion_tokens") or count_tokens(content))
            reply = ChatReply(
                content=content,
                prompt_tokens=int(usage.get("prompt_tokens") or prompt_tokens),
                completion_tokens=completion,
                latency_s=time.monotonic() - started,
                status=response.status_code,
                attempts=0,
                request_id=payload.get("id") or response.headers.get("x-request-id"),
                finish_reason=choice.get("finish_reason"),
            )
            self._learn_output(completion, max_tokens)
            return reply, reply.prompt_tokens + reply.completion_tokens

        reserve = prompt_tokens + self.expected_output_tokens(max_tokens)
        reply, attempts = await self._run(send, reserve_tokens=reserve, deadline=deadline)
        self.stats.prompt_tokens += reply.prompt_tokens
        self.stats.completion_tokens += reply.completion_tokens
        return replace(reply, attempts=attempts)

    async def _post(self, content: bytes, timeout: float) -> httpx.Response:
        """POST a JSON body to the chat endpoint and read the whole reply."""
        request = httpx.Request(
            "POST",
            self._chat_url,
            headers=self._post_headers,
            content=content,
            extensions={
                "timeout": {
                    "connect": min(CONNECT_TIMEOUT_S, timeout),
                    "read": timeout,
                    "write": timeout,
                    "pool": timeout,
                }
            },
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def list_models(self) -> list[str]:
        """Ids of the models the endpoint serves (also a cheap check of URL and key)."""

        async def send(timeout: float) -> tuple[list[str], int]:
            response = await self._http.get(self._models_url, timeout=timeout)
            self._check_status(response)
            try:
                return [str(item["id"]) for item in response.json()["data"]], 0
            except (ValueError, KeyError, TypeError):
                raise _Failure("unavailable", "the endpoint sent an unreadable model list") from None

        models, _ = await self._run(send, reserve_tokens=None, deadline=None)
        return models

    async def probe_stream(
        self, messages: list[dict[str, Any]], *, max_tokens: int | None = None
    ) -> StreamProbe:
        """Stream one completion and measure it; a stream cut before ``[DONE]`` is retried."""
        max_tokens = max_tokens or self.settings.max_output_tokens
        body = {
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.settings.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        prompt_tokens = count_message_tokens(messages)

        async def send(timeout: float) -> tuple[StreamProbe, int]:
            started = time.monotonic()
            async with self._http.stream("POST", self._chat_url, json=body, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                self._check_status(response)
                probe = await _read_sse(response, started, prompt_tokens)
            self._learn_output(probe.completion_tokens, max_tokens)
            return probe, probe.prompt_tokens + probe.completion_tokens

        reserve = prompt_tokens + self.expected_output_tokens(max_tokens)
        probe, attempts = await self._run(send, reserve_tokens=reserve, deadline=None)
        return replace(probe, attempts=attempts)

    # -- the retry loop and one attempt ---------------------------------------------------------

    async def _run(
        self,
        send: Callable[[float], Awaitable[tuple[T, int]]],
        *,
        reserve_tokens: int | None,
        deadline: float | None,
    ) -> tuple[T, int]:
        """Attempt ``send`` until it succeeds, the policy says stop, or the deadline passes."""
        if deadline is None:
            deadline = time.monotonic() + self.policy.deadline_s
        attempt = 0
        last: _Failure | None = None
        while True:
            self._raise_if_latched(attempt)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _gave_up_at_deadline(last, attempt)
            attempt += 1
            try:
                return await self._attempt(send, reserve_tokens, deadline), attempt
            except _WaitedPastDeadline:
                raise _gave_up_at_deadline(last, attempt - 1) from None
            except _Failure as failure:
                last = failure
                if failure.kind in ("auth", "bad_request") or not self.policy.should_retry(
                    attempt, failure.status, failure.headers
                ):
                    raise failure.to_error(attempt) from None
                wait = self.policy.wait_s(attempt, failure.headers)
                if time.monotonic() + wait >= deadline:
                    raise failure.to_error(attempt) from None
                self.stats.retries += 1
                log.debug("attempt %d failed (%s); retrying in %.2fs", attempt, failure, wait)
                await asyncio.sleep(wait)

    async def _attempt(
        self, send: Callable[[float], Awaitable[tuple[T, int]]], reserve_tokens: int | None, deadline: float
    ) -> T:
        """One attempt: take a concurrency slot and the budget, send, report the outcome to both."""
        try:
            async with asyncio.timeout_at(deadline):
                await self.limiter.acquire()
        except TimeoutError:
            raise _WaitedPastDeadline from None
        try:
            sent = None
            if not self._verified:
                # Until a reply proves the key, one request at a time: a wrong key costs one request.
                # The gate is taken before the budget so that a 429 on the first request pauses the rest.
                # Whoever queued here meanwhile goes on at once when the key is proven, not one by one.
                async with self._gate:
                    self._raise_if_latched(0)
                    if not self._verified:
                        sent = await self._budgeted_send(send, reserve_tokens, deadline)
            result, sent_at = sent or await self._budgeted_send(send, reserve_tokens, deadline)
            # The provider's latency only: time spent waiting for the budget is our own pacing, and
            # counting it would read a rate-limited run as a congested provider.
            self.limiter.on_success(sent_at, time.monotonic() - sent_at)
            return result
        finally:
            self.limiter.release()

    async def _budgeted_send(
        self,
        send: Callable[[float], Awaitable[tuple[T, int]]],
        reserve_tokens: int | None,
        deadline: float,
    ) -> tuple[T, float]:
        """Wait for the rate budget, send, and settle the reservation with what was really used.

        Returns the result and the monotonic time it was sent (after the budget's wait).
        """
        reservation = None
        if reserve_tokens is not None:
            try:
                async with asyncio.timeout_at(deadline):  # the loop clock is time.monotonic()
                    # Until the key is proven this request goes alone: no lease ahead.
                    reservation = await self.budget.acquire(reserve_tokens, lease=self._verified)
            except TimeoutError:
                raise _WaitedPastDeadline from None
        used = 0
        sent_at = time.monotonic()
        try:
            self._raise_if_latched(0)
            timeout = max(0.001, min(self.settings.timeout_s, deadline - sent_at))
            result, used = await self._send(send, timeout)
            return result, sent_at
        except _Failure as failure:
            if reservation is not None:
                used = reservation.tokens  # a refused or failed request is charged as reserved
            if failure.kind == "rate_limited":
                self.limiter.on_overload(sent_at)
                advised = parse_retry_after(failure.headers)
                if advised:
                    # The provider is full: every caller of this account waits, not only this one.
                    await self.budget.pause_for(advised)
            raise
        finally:
            if reservation is not None:
                self.budget.settle(reservation, used)

    async def _send(self, send: Callable[[float], Awaitable[tuple[T, int]]], timeout: float) -> tuple[T, int]:
        """Run ``send`` under an overall timeout and turn transport trouble into a ``_Failure``."""
        self.stats.requests += 1
        try:
            async with asyncio.timeout(timeout):
                return await send(timeout)
        except _Failure:
            raise
        except TimeoutError:
            self.stats.timeouts += 1
            raise _Failure("timeout", f"the endpoint did not answer within {timeout:.1f}s") from None
        except (httpx.TransportError, OSError) as exc:
            failure = _classify_transport_error(exc)
            self.stats.timeouts += failure.kind == "timeout"
            self.stats.transport_errors += failure.kind != "timeout"
            raise failure from None
        except Exception as exc:
            if type(exc).__module__.startswith("aiohttp"):  # transport errors httpx-aiohttp does not map
                self.stats.transport_errors += 1
                raise _Failure(
                    "unavailable", f"connection to the endpoint failed ({type(exc).__name__})"
                ) from None
            raise

    def _check_status(self, response: httpx.Response) -> None:
        """Learn from the reply's headers and raise a classified ``_Failure`` for an error status."""
        status = response.status_code
        self.stats.by_status[status] += 1
        # One pass over the reply's headers: httpx's Headers scans and decodes them all per lookup.
        headers = dict(response.headers.items())
        self.budget.observe_headers(headers)
        if status < 400:
            self._verified = True
            return
        if status in (401, 403):
            # The provider's text may echo part of the key, so it is not repeated.
            self._auth_failure = f"the endpoint rejected the API key (HTTP {status}); check the connection"
            raise _Failure("auth", self._auth_failure, status=status)
        self._verified = True
        if status == 429:
            self.stats.rate_limited += 1
            raise _Failure("rate_limited", "the endpoint kept answering 429", status=429, headers=headers)
        if status in (400, 404, 422) or (status < 500 and status not in (408, 409)):
            message = f"the endpoint refused the request (HTTP {status}): {_provider_message(response)}"
            raise _Failure("bad_request", message, status=status, headers=headers)
        kind: _Kind = "timeout" if status == 408 else "unavailable"
        raise _Failure(kind, f"the endpoint failed (HTTP {status})", status=status, headers=headers)

    def _raise_if_latched(self, attempts: int) -> None:
        if self._auth_failure is not None:
            raise AuthenticationFailed(self._auth_failure, status=401, attempts=attempts)

    def _learn_output(self, completion_tokens: int, max_tokens: int) -> None:
        ratio = min(1.0, completion_tokens / max(1, max_tokens))
        current = self._expected_ratio
        if current is None:
            self._expected_ratio = ratio
        else:
            self._expected_ratio = current + EXPECTED_OUTPUT_SMOOTHING * (ratio - current)


def _gave_up_at_deadline(last: _Failure | None, attempts: int) -> ProviderError:
    if last is not None:
        return last.to_error(attempts)
    # Never sent: the budget or the concurrency limit kept it waiting past its deadline.
    return RateLimited("the review's deadline passed while waiting for the rate budget", attempts=attempts)


async def _read_sse(response: httpx.Response, started: float, prompt_tokens: int) -> StreamProbe:
    """Read an SSE chat stream to ``[DONE]``; a stream that ends earlier is a retryable failure."""
    parts: list[str] = []
    first_token_at: float | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = {}
    chunks = 0
    done = False
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            event = json.loads(data)
        except ValueError:
            raise _Failure("unavailable", "the stream sent an unreadable event") from None
        chunks += 1
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                first_token_at = first_token_at or time.monotonic()
                parts.append(piece)
            finish_reason = choice.get("finish_reason") or finish_reason
    if not done:
        raise _Failure("unavailable", "the stream ended before [DONE]")
    ended = time.monotonic()
    content = "".join(parts)
    completion = int(usage.get("completion_tokens") or count_tokens(content))
    ttft = (first_token_at or ended) - started
    generation_s = ended - (first_token_at or ended)
    return StreamProbe(
        content=content,
        ttft_s=ttft,
        tokens_per_s=completion / generation_s if generation_s > 0 else 0.0,
        latency_s=ended - started,
        prompt_tokens=int(usage.get("prompt_tokens") or prompt_tokens),
        completion_tokens=completion,
        finish_reason=finish_reason,
        attempts=0,
        chunks=chunks,
    )
