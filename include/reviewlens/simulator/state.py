"""The mutable state of one running simulator: current config, limiter, fault injector, log."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from reviewlens.simulator.config import SimulatorConfig, apply_patch, limits_changed
from reviewlens.simulator.faults import FaultInjector
from reviewlens.simulator.latency import LatencyModel
from reviewlens.simulator.limits import RateLimiter
from reviewlens.simulator.log import RequestLog

# Independent random streams per request, so that e.g. a fault's extra draws never shift latencies.
STREAM_FAULTS = 1
STREAM_LATENCY = 2


class SimulatorState:
    """Everything a request handler reads or updates; lives on the server's event loop only."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.log = RequestLog(config.log_limit)
        self.seq = 0
        self.started = time.time()
        self._build(config, limits=True)

    def _build(self, config: SimulatorConfig, *, limits: bool) -> None:
        self.latency = LatencyModel(config.latency_median_ms, config.latency_p95_ms)
        self.injector = FaultInjector(config.faults)
        if limits:
            self.limiter = RateLimiter(
                rpm=config.rpm,
                tpm=config.tpm,
                burst_requests=config.burst_requests,
                burst_tokens=config.burst_tokens,
            )

    def reconfigure(self, patch: Mapping[str, Any]) -> SimulatorConfig:
        """Apply an admin patch; buckets restart only when a limit changed, fault counters when faults did."""
        old, new = self.config, apply_patch(self.config, patch)
        self.config = new
        self.latency = LatencyModel(new.latency_median_ms, new.latency_p95_ms)
        if "faults" in patch:
            self.injector = FaultInjector(new.faults)
        if limits_changed(old, new):
            self._build(new, limits=True)
        if new.log_limit != old.log_limit:
            self.log.resize(new.log_limit)
        return new

    def reset(self) -> None:
        """Forget history: log, counters, request sequence (so draws repeat), buckets, fault counters."""
        self.log.reset()
        self.seq = 0
        self._build(self.config, limits=True)

    def next_rngs(self) -> tuple[int, random.Random, random.Random]:
        """The request's sequence number and its fault and latency RNGs, derived from the seed."""
        n = self.seq
        self.seq += 1
        base = (self.config.seed * 1_000_003 + n) * 8
        return n, random.Random(base + STREAM_FAULTS), random.Random(base + STREAM_LATENCY)
