"""The reply-latency model: lognormal, parameterised by its median and 95th percentile."""

from __future__ import annotations

import math
import random

_Z95 = 1.6448536269514722  # standard normal quantile of 0.95


class LatencyModel:
    """Draws a delay in seconds; median 0 means no delay, p95 <= median means a constant delay."""

    def __init__(self, median_ms: float, p95_ms: float) -> None:
        self.median_s = max(0.0, median_ms) / 1000
        self.mu = math.log(self.median_s) if self.median_s > 0 else 0.0
        self.sigma = math.log(p95_ms / median_ms) / _Z95 if median_ms > 0 and p95_ms > median_ms else 0.0

    def sample(self, rng: random.Random) -> float:
        if self.median_s <= 0:
            return 0.0
        if self.sigma == 0:
            return self.median_s
        return rng.lognormvariate(self.mu, self.sigma)
