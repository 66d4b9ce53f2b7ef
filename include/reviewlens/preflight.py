"""Checks that fail a run before any spend, with a message that says what, where and how to fix.

Two steps, cheapest first:

1. ``check_endpoint``: ``GET /models`` with the key. Free at every provider, it finds a wrong URL,
   key or model name without sending a single review.
2. ``prove_endpoint``: one real, tiny chat completion shaped exactly like the pipeline's own requests
   (one short synthetic review through ``analyzer.send_one``). It proves what listing models cannot:
   that the key is accepted *for chat completions*, and which ``response_format`` the endpoint takes
   (json_schema, or "none" after a 400 about it). The facts come back as an ``EndpointState`` whose
   ``as_dict()`` is what the DAG's ``check_setup`` hands every ``analyze_chunk`` through XCom; a chunk
   seeded with it skips its own lone first request and opens its whole window at once. The proof
   costs one short request per DAG run; without it, every chunk paid one round trip.

The proof's review travels under the alias ``preflight`` (the analyzer's own aliases are "1", "2",
…), so that it is recognisable in the provider's request log. No key ever enters a message or the
exported facts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reviewlens.analyzer import ChatClientLike, EndpointState, send_one
from reviewlens.config import LLMSettings
from reviewlens.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigurationError,
    ProviderError,
)
from reviewlens.taxonomy import Taxonomy

log = logging.getLogger(__name__)

CONNECTION = "reviewlens_llm"
PROOF_ALIAS = "preflight"
PROOF_REVIEW = "Arrived on time and the sound is great, but the battery dies after two hours."
# The proof must not turn a slow afternoon at the provider into a failed night: few attempts.
PROOF_ATTEMPTS = 2


def _where(settings: LLMSettings) -> str:
    return f"the endpoint {settings.base_url} (connection {CONNECTION})"


def _rejected_key(settings: LLMSettings, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"{_where(settings)} rejected the API key (HTTP 401/403) for {what}. Put a valid key in the "
        "connection's password field (or AIRFLOW_CONN_REVIEWLENS_LLM); no review was sent."
    )


def check_endpoint(settings: LLMSettings) -> dict:
    """GET /models with the key: the URL answers, the key is accepted and the model is served.

    Listing models costs nothing at any provider, so a wrong URL, key or model name is found here
    instead of on the first of thousands of paid requests.
    """
    from reviewlens.client import ChatClient

    quick = settings.with_(max_attempts=2, timeout_s=min(settings.timeout_s, 15.0))

    async def list_models() -> list[str]:
        async with ChatClient(quick) as client:
            return await client.list_models()

    where = _where(settings)
    try:
        models = asyncio.run(list_models())
    except AuthenticationFailed:
        raise _rejected_key(settings, "GET /models") from None
    except BadRequest as exc:
        raise ConfigurationError(
            f"{where} answered HTTP {exc.status} to GET /models: it does not look like an OpenAI-compatible "
            "base URL. The base URL usually ends in /v1 (e.g. https://api.openai.com/v1)."
        ) from None
    except ProviderError as exc:
        raise ConfigurationError(
            f"Cannot reach {where}: {type(exc).__name__} after {exc.attempts} attempt(s). Check the host "
            "and port, and that the server is running."
        ) from None
    if models and settings.model not in models:
        shown = ", ".join(sorted(models)[:20])
        raise ConfigurationError(
            f"Model {settings.model!r} is not served by {where}; it offers: {shown}. "
            "Set the connection extra 'model' to one of these."
        )
    return {"models_listed": len(models)}


async def prove_endpoint(client: ChatClientLike, settings: LLMSettings, taxonomy: Taxonomy) -> EndpointState:
    """Send one tiny real analysis and return what it proved: the key, and the response_format kind.

    The request goes through the analyzer's own first-request path (``analyzer.send_one``): same
    prompt, same ``response_format`` handling, the same fallback to "none" on a 400 about it in
    ``auto`` mode. Raises ``ConfigurationError`` for what an operator must fix: a rejected key, an
    unknown model or path (404), an explicit ``response_format`` the endpoint refuses, any other
    refused request, or no HTTP answer at all. A provider that answers but fails for now (429, 5xx,
    408) does not fail the run: the state comes back unproven (``checked`` False), and each chunk
    proves the endpoint itself, as it would without a preflight.

    ``client`` is the caller's (its retry policy and budget apply); the benchmark and the DAG pass a
    fresh ``ChatClient`` of the same settings the chunks will use.
    """
    state = EndpointState()
    where = _where(settings)
    try:
        reply, item = await send_one(
            client, PROOF_REVIEW, settings=settings, taxonomy=taxonomy, state=state, alias=PROOF_ALIAS
        )
    except AuthenticationFailed:
        raise _rejected_key(settings, "a chat completion") from None
    except BadRequest as exc:
        raise ConfigurationError(_refused(settings, exc)) from None
    except ProviderError as exc:
        if exc.status is None:
            raise ConfigurationError(
                f"{where} gave no answer to a chat completion: {type(exc).__name__} after {exc.attempts} "
                "attempt(s). Check the host and port, that the server is running, and the connection "
                "extra 'timeout_s' for a slow model."
            ) from None
        log.warning(
            "%s failed the preflight chat completion for now (HTTP %s, %s); each chunk will prove the "
            "endpoint itself",
            where,
            exc.status,
            type(exc).__name__,
        )
        return EndpointState(model=settings.model, base_url=settings.base_url.rstrip("/"))
    if item.analysis is None:
        # The key and the format are proven all the same; the analyzer repairs or re-asks per review.
        log.warning("The preflight reply did not validate (%s: %s)", item.reason, item.message)
    proven = EndpointState.proven(settings, state.response_format)
    proven.output_ratio = getattr(client, "expected_output_ratio", None)
    log.info(
        "Endpoint proven with one chat completion: key accepted, response_format %s (%d + %d tokens)",
        proven.response_format,
        reply.prompt_tokens,
        reply.completion_tokens,
    )
    return proven


def _refused(settings: LLMSettings, exc: BadRequest) -> str:
    where = _where(settings)
    if exc.status == 404:
        return (
            f"{where} answered HTTP 404 to a chat completion for model {settings.model!r} ({exc}). Set the "
            "connection extra 'model' to a model this endpoint serves, and check that the base URL is "
            "the OpenAI-compatible one (it usually ends in /v1)."
        )
    if settings.response_format != "auto" and "response_format" in str(exc).lower():
        return (
            f"{where} refused response_format={settings.response_format!r} ({exc}). Set the connection "
            "extra or the 'response_format' Param to 'auto' (falls back to prompt-only JSON) or 'none'."
        )
    return (
        f"{where} refused the pipeline's chat completion ({exc}). Check the connection extra "
        "(model, max_output_tokens, temperature, response_format)."
    )


def check_and_prove_endpoint(settings: LLMSettings, taxonomy: Taxonomy) -> dict[str, Any]:
    """``check_endpoint`` (free), then ``prove_endpoint`` (one request): what ``check_setup`` runs.

    Returns ``{"models_listed": n, "endpoint": EndpointState.as_dict()}``: plain JSON, no secret.
    The proof runs only once the free check passed, so a wrong key, URL or model still costs nothing.
    """
    from reviewlens.client import ChatClient

    info = check_endpoint(settings)

    proof_settings = settings.with_(max_attempts=min(settings.max_attempts, PROOF_ATTEMPTS))

    async def prove() -> EndpointState:
        async with ChatClient(proof_settings) as client:
            return await prove_endpoint(client, settings, taxonomy)

    return {**info, "endpoint": asyncio.run(prove()).as_dict()}
