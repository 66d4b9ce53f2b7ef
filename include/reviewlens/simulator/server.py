"""The aiohttp application: OpenAI's ``/v1/models`` and ``/v1/chat/completions`` over the lexicon analyzer.

A chat request goes: authenticate -> validate -> understand the prompt -> draw a fault -> admit
against RPM/TPM -> wait the drawn latency -> answer (JSON or SSE). Every reply carries
``x-request-id`` and the ``x-ratelimit-*`` headers of the configured limits, and every chat
request lands in the request log, including the ones cancelled by a disconnecting client (499).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from typing import Any

from aiohttp import web

from reviewlens.simulator import admin, wire
from reviewlens.simulator.analysis import answer, message_text, parse_prompt, render, truncate_to_tokens
from reviewlens.simulator.config import SimulatorConfig
from reviewlens.simulator.faults import FAULT_KINDS, FaultContext, FaultEffect
from reviewlens.simulator.limits import retry_after_headers
from reviewlens.simulator.log import LogEntry
from reviewlens.simulator.state import SimulatorState
from reviewlens.simulator.streaming import StreamPlan, send_stream, send_truncated
from reviewlens.tokens import count_message_tokens, count_tokens

STATE = web.AppKey("state", SimulatorState)
_RESPONSE_FORMATS = {"text", "json_object", "json_schema"}
_CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"


class ErrorReply(Exception):
    """Raised inside the chat handler to answer at once with an OpenAI-style error body."""

    def __init__(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _json(status: int, body: dict, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status, body=wire.dumps(body), headers=headers, content_type="application/json"
    )


def _check_key(request: web.Request, expected: str | None) -> None:
    if expected is None:
        return
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not given:
        message = "You didn't provide an API key. Provide it in the Authorization header (Bearer auth)."
    elif hmac.compare_digest(given.encode(), expected.encode()):
        return
    else:
        message = "Incorrect API key provided. Check the connection's password."  # never echo the key
    raise ErrorReply(401, wire.error_body(message, type_="invalid_request_error", code="invalid_api_key"))


def _bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ErrorReply:
    return ErrorReply(400, wire.error_body(message, type_="invalid_request_error", param=param, code=code))


def _validate(body: Any, config: SimulatorConfig) -> dict:
    if not isinstance(body, dict):
        raise _bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if model not in config.models:
        raise ErrorReply(
            404,
            wire.error_body(
                f"The model `{model}` does not exist or you do not have access to it.",
                type_="invalid_request_error",
                param="model",
                code="model_not_found",
            ),
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _bad_request("'messages' must be a non-empty array of objects.", param="messages")
    response_format = body.get("response_format")
    if response_format is not None:
        if not config.supports_response_format:
            raise _bad_request(
                "Invalid parameter: 'response_format' is not supported with this model.",
                param="response_format",
                code="unsupported_parameter",
            )
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in _RESPONSE_FORMATS:
            raise _bad_request(
                f"Invalid value for 'response_format.type': {kind!r}.",
                param="response_format",
                code="invalid_value",
            )
    return body


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **state.limiter.headers()}
    try:
        _check_key(request, state.config.api_key)
    except ErrorReply as reply:
        return _json(reply.status, reply.body, headers)
    return _json(200, wire.model_list(state.config.models, int(state.started)), headers)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    hex_id = uuid.uuid4().hex
    entry = LogEntry(f"req_{hex_id}", time.time())
    state.log.started()
    try:
        return await _chat(request, state, entry, hex_id)
    except ErrorReply as reply:
        entry.status = reply.status
        headers = {"x-request-id": entry.request_id, **state.limiter.headers(), **reply.headers}
        return _json(reply.status, reply.body, headers)
    except asyncio.CancelledError:
        entry.status = _CLIENT_CLOSED
        raise
    except Exception:
        entry.status = 500  # a simulator bug: aiohttp answers 500 and logs the traceback
        raise
    finally:
        entry.t_end = time.time()
        state.log.finished(entry)


async def _chat(
    request: web.Request, state: SimulatorState, entry: LogEntry, hex_id: str
) -> web.StreamResponse:
    config = state.config
    _, fault_rng, latency_rng = state.next_rngs()
    _check_key(request, config.api_key)
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise _bad_request("We could not parse the JSON body of your request.") from None
    body = _validate(body, config)
    entry.model = body["model"]
    stream = entry.stream = bool(body.get("stream"))
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and bool(options.get("include_usage"))
    messages = body["messages"]

    prompt = parse_prompt(messages)
    entry.review_ids = prompt.review_ids
    payload = answer(prompt)
    fault, targets = state.injector.draw(
        fault_rng, review_ids=entry.review_ids, texts=prompt.texts, packed=prompt.packed, stream=stream
    )
    entry.fault = fault
    effect = FaultEffect()
    if fault is not None:
        ctx = FaultContext(fault_rng, config.faults, payload, prompt.packed, stream, targets)
        effect = FAULT_KINDS[fault].effect(ctx)
    if effect.error is not None:
        raise ErrorReply(*effect.error)

    content = effect.content if effect.content is not None else render(payload)
    finish_reason = "stop"
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        cut = truncate_to_tokens(content, max_tokens, count_tokens)
        if cut != content:
            content, finish_reason = cut, "length"
    entry.prompt_tokens = count_message_tokens([{"content": message_text(m)} for m in messages])
    entry.completion_tokens = count_tokens(content)

    admission = state.limiter.admit(entry.prompt_tokens + entry.completion_tokens)
    if not admission.ok:
        entry.completion_tokens = 0  # nothing was generated
        raise _rate_limited(admission.limited_by or "requests", admission.retry_after_s, state)

    token_delay_s = config.token_delay_ms / 1000
    delay = state.latency.sample(latency_rng) + effect.delay_s
    entry.latency_ms = round((delay + (token_delay_s * entry.completion_tokens)) * 1000, 3)
    if not stream:
        delay += token_delay_s * entry.completion_tokens  # the whole generation happens before the body
    if delay > 0:
        await asyncio.sleep(delay)

    headers = {"x-request-id": entry.request_id, **state.limiter.headers()}
    entry.status = 200
    created = int(time.time())
    if stream:
        plan = StreamPlan(
            completion_id=f"chatcmpl-{hex_id}",
            created=created,
            model=entry.model,
            content=content,
            finish_reason=finish_reason,
            prompt_tokens=entry.prompt_tokens,
            completion_tokens=entry.completion_tokens,
            include_usage=include_usage,
            token_delay_s=token_delay_s,
            chunk_chars=config.stream_chunk_chars,
            transport=effect.transport,
        )
        return await send_stream(request, headers, plan)
    reply = wire.completion(
        completion_id=f"chatcmpl-{hex_id}",
        created=created,
        model=entry.model,
        content=content,
        finish_reason=finish_reason,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
    )
    if effect.transport is not None:
        return await send_truncated(request, 200, headers, wire.dumps(reply))
    return _json(200, reply, headers)


def _rate_limited(limited_by: str, wait_s: float, state: SimulatorState) -> ErrorReply:
    limit = state.config.rpm if limited_by == "requests" else state.config.tpm
    unit = "requests per min (RPM)" if limited_by == "requests" else "tokens per min (TPM)"
    message = (
        f"Rate limit reached for {state.config.models[0]} on {unit}: Limit {limit}. "
        f"Please try again in {wait_s * 1000:.0f}ms."
    )
    body = wire.error_body(message, type_=limited_by, code="rate_limit_exceeded")
    return ErrorReply(429, body, retry_after_headers(wait_s))


def build_app(config: SimulatorConfig) -> web.Application:
    """The aiohttp application for ``config`` (state attached under ``STATE``)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = SimulatorState(config)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    admin.add_routes(app, STATE)
    return app


async def serve(config: SimulatorConfig, *, shutdown_timeout: float = 1.0) -> tuple[web.AppRunner, int]:
    """Start listening; return the runner (call ``cleanup()`` to stop) and the bound port."""
    runner = web.AppRunner(
        build_app(config), access_log=None, handler_cancellation=True, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    # A large backlog: benchmarks open hundreds of connections at once.
    site = web.TCPSite(runner, config.host, config.port, backlog=4096, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)
