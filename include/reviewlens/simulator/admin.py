"""Admin endpoints under ``/_sim/`` for tests and benchmarks: reconfigure, read the log, reset, stats.

They answer loopback clients only, so binding the simulator to a public interface for a demo does
not let anyone else switch faults on or read the log.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reviewlens.errors import ConfigurationError
from reviewlens.simulator import wire

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _ok(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=wire.dumps(body), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _ok(wire.error_body(message, type_="invalid_request_error"), status)


def _loopback_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.Response:
        try:
            local = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            local = False
        if not local:
            return _error(403, "The simulator's admin endpoints answer loopback clients only.")
        return await handler(request)

    return guarded


def add_routes(app: web.Application, key: web.AppKey) -> None:
    """Register the admin routes on ``app``; ``key`` is where the ``SimulatorState`` lives."""

    @_loopback_only
    async def get_config(request: web.Request) -> web.Response:
        return _ok(request.app[key].config.to_dict())

    @_loopback_only
    async def post_config(request: web.Request) -> web.Response:
        try:
            patch = json.loads(await request.read() or b"{}")
            if not isinstance(patch, dict):
                raise ConfigurationError("the config patch must be a JSON object")
            config = request.app[key].reconfigure(patch)
        except (ValueError, TypeError, ConfigurationError) as exc:
            return _error(400, f"Invalid simulator config: {exc}")
        return _ok(config.to_dict())

    @_loopback_only
    async def get_requests(request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _error(400, "'since' must be an integer index")
        log = request.app[key].log
        return _ok({"data": log.entries(since), "next_index": log.next_index})

    @_loopback_only
    async def post_reset(request: web.Request) -> web.Response:
        request.app[key].reset()
        return _ok({"reset": True})

    @_loopback_only
    async def get_stats(request: web.Request) -> web.Response:
        return _ok(request.app[key].log.stats())

    app.router.add_get("/_sim/config", get_config)
    app.router.add_post("/_sim/config", post_config)
    app.router.add_get("/_sim/requests", get_requests)
    app.router.add_post("/_sim/reset", post_reset)
    app.router.add_get("/_sim/stats", get_stats)
