"""Checks that fail a run before any spend, with a message that says what, where and how to fix."""

from __future__ import annotations

import asyncio

from reviewlens.config import LLMSettings
from reviewlens.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigurationError,
    ProviderError,
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

    where = f"the endpoint {settings.base_url} (connection reviewlens_llm)"
    try:
        models = asyncio.run(list_models())
    except AuthenticationFailed:
        raise ConfigurationError(
            f"{where} rejected the API key (HTTP 401/403). Put a valid key in the connection's password "
            "field (or AIRFLOW_CONN_REVIEWLENS_LLM); no review was sent."
        ) from None
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
