"""The OpenAI chat-completions wire shapes the simulator answers with (bodies and SSE chunks)."""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes for an HTTP body."""
    return json.dumps(obj, separators=(",", ":")).encode()


def error_body(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    *,
    completion_id: str,
    created: int,
    model: str,
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict:
    """A non-streaming ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": "fp_reviewlens_sim",
    }


def chunk(
    *,
    completion_id: str,
    created: int,
    model: str,
    delta: dict | None,
    finish_reason: str | None = None,
    usage_: dict | None = None,
    with_usage_field: bool = False,
) -> dict:
    """One ``chat.completion.chunk``; ``delta=None`` gives the usage-only chunk with empty choices."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_reviewlens_sim",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    # With include_usage OpenAI sends "usage": null on every chunk but the last one.
    if with_usage_field or usage_ is not None:
        body["usage"] = usage_
    return body


def sse(obj: Any) -> bytes:
    """One server-sent event line pair carrying ``obj`` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def model_list(models: tuple[str, ...], created: int) -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": "reviewlens"} for m in models],
    }
