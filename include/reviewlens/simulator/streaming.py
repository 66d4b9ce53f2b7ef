"""Writing a reply body: SSE streams split into deltas, and the two broken-transport faults.

Without per-token pacing a whole stream is written in one go (still several SSE deltas), which
keeps the per-request cost to one socket write; with pacing each delta is flushed after its delay.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from reviewlens.simulator import wire
from reviewlens.simulator.faults import Transport
from reviewlens.tokens import count_tokens


@dataclass(frozen=True)
class StreamPlan:
    """Everything needed to stream one completion."""

    completion_id: str
    created: int
    model: str
    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    include_usage: bool
    token_delay_s: float
    chunk_chars: int
    transport: Transport | None = None


def abort(request: web.BaseRequest) -> None:
    """Drop the connection without finishing the response (the client sees a truncated body)."""
    if request.transport is not None:
        request.transport.abort()


async def send_truncated(
    request: web.BaseRequest, status: int, headers: dict[str, str], body: bytes
) -> web.StreamResponse:
    """Send the headers and half of ``body`` (announcing its full length), then abort the connection."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    abort(request)
    return response


async def send_stream(
    request: web.BaseRequest, headers: dict[str, str], plan: StreamPlan
) -> web.StreamResponse:
    """Stream ``plan.content`` as ``chat.completion.chunk`` events ending in ``data: [DONE]``."""
    response = web.StreamResponse(status=200, headers={**headers, "Cache-Control": "no-cache"})
    response.content_type = "text/event-stream"
    await response.prepare(request)

    def event(delta: dict | None, finish_reason: str | None = None, usage: dict | None = None) -> bytes:
        return wire.sse(
            wire.chunk(
                completion_id=plan.completion_id,
                created=plan.created,
                model=plan.model,
                delta=delta,
                finish_reason=finish_reason,
                usage_=usage,
                with_usage_field=plan.include_usage,
            )
        )

    size = max(1, plan.chunk_chars)
    pieces = [plan.content[i : i + size] for i in range(0, len(plan.content), size)] or [""]
    cut_at = len(pieces) // 2 if plan.transport else None
    buffer = [event({"role": "assistant", "content": "", "refusal": None})]
    for i, piece in enumerate(pieces):
        if i == cut_at:
            await response.write(b"".join(buffer))
            if plan.transport == "reset":
                abort(request)
            else:
                await response.write_eof()  # a clean end of stream, but no finish_reason and no [DONE]
            return response
        if plan.token_delay_s > 0:
            await response.write(b"".join(buffer))
            buffer.clear()
            await asyncio.sleep(plan.token_delay_s * count_tokens(piece))
        buffer.append(event({"content": piece}))
    buffer.append(event({}, plan.finish_reason))
    if plan.include_usage:
        buffer.append(event(None, usage=wire.usage(plan.prompt_tokens, plan.completion_tokens)))
    buffer.append(wire.SSE_DONE)
    await response.write(b"".join(buffer))
    await response.write_eof()
    return response
