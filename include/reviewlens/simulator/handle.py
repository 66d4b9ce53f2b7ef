"""Starting a simulator from Python: in a background thread, or in a subprocess for benchmarks.

Both return a ``SimulatorHandle`` that talks to the admin endpoints over plain synchronous HTTP,
so the two behave identically. The subprocess gets its config (key included) through the
environment, never the command line, where ``ps`` would show the key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from reviewlens.errors import ConfigurationError
from reviewlens.simulator.config import FaultConfig, SimulatorConfig
from reviewlens.simulator.server import serve

CONFIG_ENV = "REVIEWLENS_SIM_CONFIG"
API_KEY_ENV = "REVIEWLENS_SIM_API_KEY"
_INCLUDE_DIR = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 30.0


def _jsonable(value: Any) -> Any:
    if isinstance(value, FaultConfig):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    return value


class SimulatorHandle:
    """A running simulator: ``base_url`` for clients, admin calls for tests; a context manager."""

    def __init__(self, host: str, port: int, stop: Callable[[], None]) -> None:
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.root_url = f"http://{connect_host}:{port}"
        self.base_url = f"{self.root_url}/v1"
        self.port = port
        self._stop = stop
        self._admin = httpx.Client(base_url=self.root_url, timeout=30.0, trust_env=False)
        self._closed = False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._admin.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ConfigurationError(f"simulator admin {method} {path} failed: {response.text}")
        return response.json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Patch the running config (``faults=`` replaces the fault config); returns it, key omitted."""
        return self._call("POST", "/_sim/config", json=_jsonable(changes))

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/config")

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Request-log entries with ``index >= since``, oldest first."""
        return self._call("GET", "/_sim/requests", params={"since": since})["data"]

    def reset(self) -> None:
        """Clear log and counters, refill the buckets and restart the seeded draw sequence."""
        self._call("POST", "/_sim/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/stats")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._admin.close()
        self._stop()

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimulatorHandle(base_url={self.base_url!r})"


def start_in_thread(config: SimulatorConfig | None = None) -> SimulatorHandle:
    """Serve ``config`` on its own event loop in a daemon thread of this process."""
    config = config or SimulatorConfig()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            # A short shutdown grace: a "hang" fault must not hold close() for minutes.
            runner, port = loop.run_until_complete(serve(config, shutdown_timeout=0.2))
        except BaseException as exc:
            outcome["error"] = exc
            ready.set()
            loop.close()
            return
        outcome["port"] = port
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=run, name="reviewlens-simulator", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT_S):
        raise ConfigurationError("the simulator thread did not start in time")
    if "error" in outcome:
        raise ConfigurationError(f"the simulator could not start: {outcome['error']}") from outcome["error"]

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return SimulatorHandle(config.host, outcome["port"], stop)


def start_process(config: SimulatorConfig | None = None) -> SimulatorHandle:
    """Serve ``config`` from ``python -m reviewlens.simulator`` (own GIL), ready once it prints READY."""
    config = config or SimulatorConfig()
    env = dict(os.environ)
    env[CONFIG_ENV] = json.dumps(_jsonable(config.to_dict(include_key=True)))
    env.pop(API_KEY_ENV, None)  # the config's own key (or None) must win over an inherited one
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_INCLUDE_DIR), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reviewlens.simulator"], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + _START_TIMEOUT_S
    line = ""
    while not line.startswith("READY "):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
        line = proc.stdout.readline() if readable else ""
        if (not readable or not line) and (proc.poll() is not None or time.monotonic() >= deadline):
            _terminate(proc)
            raise ConfigurationError(f"the simulator process did not start (exit code {proc.returncode})")
    base_url = line.split()[1]
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    return SimulatorHandle(config.host, port, lambda: _terminate(proc))


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
