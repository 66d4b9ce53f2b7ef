"""``python -m reviewlens.simulator``: serve the local endpoint until SIGTERM or SIGINT.

Prints ``READY http://HOST:PORT/v1`` on stdout once listening. Prefer passing the API key through
``REVIEWLENS_SIM_API_KEY``: a key on a command line is visible to every user through ``ps``.
A full config as JSON may come from ``REVIEWLENS_SIM_CONFIG`` (that is how ``start_process`` passes
it); command-line options override it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from reviewlens.errors import ConfigurationError
from reviewlens.simulator.config import SimulatorConfig, apply_patch
from reviewlens.simulator.handle import API_KEY_ENV, CONFIG_ENV
from reviewlens.simulator.server import serve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reviewlens.simulator", description=__doc__.splitlines()[0])
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port; 0 picks a free one (default 8099)")
    p.add_argument("--api-key", help=f"required bearer token; prefer the {API_KEY_ENV} environment variable")
    p.add_argument("--model", action="append", dest="models", help="accepted model name (repeatable)")
    p.add_argument("--rpm", type=int, help="requests per minute (default unlimited)")
    p.add_argument("--tpm", type=int, help="tokens per minute (default unlimited)")
    p.add_argument("--burst-requests", type=float, help="request bucket capacity (default 1 s worth)")
    p.add_argument("--burst-tokens", type=float, help="token bucket capacity (default 1 s worth)")
    p.add_argument("--latency-median-ms", type=float)
    p.add_argument("--latency-p95-ms", type=float)
    p.add_argument("--token-delay-ms", type=float, help="extra delay per completion token")
    p.add_argument("--seed", type=int)
    p.add_argument("--faults", help="fault rates and targeting as JSON, e.g. '{\"server_error\": 0.1}'")
    p.add_argument("--no-response-format", action="store_true", help="answer 400 to response_format")
    p.add_argument("--log-limit", type=int, help="request-log entries kept in memory")
    return p


def config_from_args(argv: list[str] | None = None) -> SimulatorConfig:
    """Environment config, then the key from the environment, then command-line options."""
    args = _parser().parse_args(argv)
    base = SimulatorConfig(port=8099)
    if os.environ.get(CONFIG_ENV):
        base = apply_patch(SimulatorConfig(), json.loads(os.environ[CONFIG_ENV]))
    patch: dict = {}
    if os.environ.get(API_KEY_ENV):
        patch["api_key"] = os.environ[API_KEY_ENV]
    options = {
        "host": args.host,
        "port": args.port,
        "api_key": args.api_key,
        "models": tuple(args.models) if args.models else None,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "burst_requests": args.burst_requests,
        "burst_tokens": args.burst_tokens,
        "latency_median_ms": args.latency_median_ms,
        "latency_p95_ms": args.latency_p95_ms,
        "token_delay_ms": args.token_delay_ms,
        "seed": args.seed,
        "faults": json.loads(args.faults) if args.faults else None,
        "log_limit": args.log_limit,
    }
    patch.update({k: v for k, v in options.items() if v is not None})
    if args.no_response_format:
        patch["supports_response_format"] = False
    return apply_patch(base, patch)


async def _main(config: SimulatorConfig) -> None:
    runner, port = await serve(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", "::") else config.host
    print(f"READY http://{host}:{port}/v1", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
    except (ConfigurationError, ValueError) as exc:
        print(f"reviewlens.simulator: {exc}", file=sys.stderr)
        return 2
    _run(config)
    return 0


def _run(config: SimulatorConfig) -> None:
    try:
        import uvloop  # optional: a faster event loop, so the simulator is not a benchmark's bottleneck
    except ImportError:  # pragma: no cover
        asyncio.run(_main(config))
        return
    uvloop.run(_main(config))


if __name__ == "__main__":
    sys.exit(main())
