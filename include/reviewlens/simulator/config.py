"""Every knob of the local endpoint, with its default, in one place.

``SimulatorConfig`` and ``FaultConfig`` are frozen dataclasses; ``to_dict`` / ``from_dict`` carry
them over the admin endpoint, the CLI and the environment of a subprocess. ``apply_patch`` is the
one place that turns an admin JSON patch into a new config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from reviewlens.config import DEFAULT_MODEL
from reviewlens.errors import ConfigurationError
from reviewlens.simulator.faults import FAULT_KINDS

DEFAULT_LOG_LIMIT = 200_000
DEFAULT_HANG_S = 120.0


@dataclass(frozen=True)
class FaultConfig:
    """How often each fault kind happens (0..1, drawn independently per request) and to which requests.

    ``rates`` maps a kind of ``faults.FAULT_KINDS`` to its probability. Targeting narrows which
    requests are eligible: ``only_review_ids`` (a fenced review id of the request is in the set),
    ``match_text`` (case-insensitive substring of a review text), ``first_n_requests`` (only the
    first N eligible requests since the faults were set) and ``max_faults`` (stop after N faults).
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    only_review_ids: frozenset[str] | None = None
    match_text: str | None = None
    first_n_requests: int | None = None
    max_faults: int | None = None
    hang_s: float = DEFAULT_HANG_S
    retry_after_s: float = 1.0  # Retry-After of the rate_limit_burst fault
    server_error_statuses: tuple[int, ...] = (500, 502, 503)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - set(FAULT_KINDS))
        if unknown:
            raise ConfigurationError(f"unknown fault kind(s) {unknown}; known: {sorted(FAULT_KINDS)}")
        for kind, rate in self.rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ConfigurationError(f"fault rate {kind}={rate} must be between 0 and 1")
        # Normalise containers so that equal configs compare equal and stay immutable.
        object.__setattr__(self, "rates", {k: float(v) for k, v in self.rates.items() if float(v) > 0})
        if self.only_review_ids is not None:
            object.__setattr__(self, "only_review_ids", frozenset(str(i) for i in self.only_review_ids))
        object.__setattr__(self, "server_error_statuses", tuple(int(s) for s in self.server_error_statuses))

    @classmethod
    def of(cls, **knobs: Any) -> FaultConfig:
        """Build from flat keywords: fault kinds are rates, anything else a targeting knob.

        ``FaultConfig.of(server_error=0.1, only_review_ids={"r2"})``
        """
        return cls.from_dict(knobs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | FaultConfig | None) -> FaultConfig:
        """Accept the flat form ``{"server_error": 0.1, "hang_s": 5}`` or ``{"rates": {...}, ...}``."""
        if data is None:
            return cls()
        if isinstance(data, FaultConfig):
            return data
        rates = dict(data.get("rates") or {})
        knobs: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key == "rates":
                continue
            if key in FAULT_KINDS:
                rates[key] = value
            elif key in names:
                knobs[key] = value
            else:
                raise ConfigurationError(f"unknown fault knob {key!r}; kinds: {sorted(FAULT_KINDS)}")
        if knobs.get("server_error_statuses") is not None:
            knobs["server_error_statuses"] = tuple(knobs["server_error_statuses"])
        return cls(rates=rates, **knobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rates": dict(self.rates),
            "only_review_ids": sorted(self.only_review_ids) if self.only_review_ids is not None else None,
            "match_text": self.match_text,
            "first_n_requests": self.first_n_requests,
            "max_faults": self.max_faults,
            "hang_s": self.hang_s,
            "retry_after_s": self.retry_after_s,
            "server_error_statuses": list(self.server_error_statuses),
        }


@dataclass(frozen=True)
class SimulatorConfig:
    """All knobs of the simulator; the same seed and knobs give the same faults and latencies."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    api_key: str | None = None  # None = accept any or no bearer token
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    seed: int = 0
    # Lognormal reply latency (time to first token); 0 median = answer at once.
    latency_median_ms: float = 0.0
    latency_p95_ms: float = 0.0
    # Extra delay per completion token (streamed deltas are paced by it; non-streaming waits the sum).
    token_delay_ms: float = 0.0
    # Account limits; None = unlimited. Buckets refill continuously at limit/60 per second.
    rpm: int | None = None
    tpm: int | None = None
    # Bucket capacities; None = one second's worth (at least one request).
    burst_requests: float | None = None
    burst_tokens: float | None = None
    supports_response_format: bool = True
    faults: FaultConfig = field(default_factory=FaultConfig)
    log_limit: int = DEFAULT_LOG_LIMIT
    stream_chunk_chars: int = 24  # size of one streamed content delta

    def __post_init__(self) -> None:
        if isinstance(self.faults, Mapping):
            object.__setattr__(self, "faults", FaultConfig.from_dict(self.faults))
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise ConfigurationError("the simulator needs at least one model name")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be positive or None (unlimited), got {value}")
        if self.latency_p95_ms and self.latency_p95_ms < self.latency_median_ms:
            raise ConfigurationError("latency_p95_ms must be >= latency_median_ms")

    def __repr__(self) -> str:
        # The key must never reach a log line through a repr.
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        body = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"SimulatorConfig(api_key={'***' if self.api_key else None}, {body})"

    def to_dict(self, *, include_key: bool = False) -> dict[str, Any]:
        """JSON-ready form; the key only when asked (to hand it to a subprocess, never to a client)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["models"] = list(self.models)
        data["faults"] = self.faults.to_dict()
        if include_key:
            return data
        data.pop("api_key")
        data["api_key_set"] = self.api_key is not None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulatorConfig:
        return apply_patch(cls(), data)


def apply_patch(config: SimulatorConfig, patch: Mapping[str, Any]) -> SimulatorConfig:
    """Return ``config`` with the keys of ``patch`` replaced; ``faults`` replaces the whole fault config."""
    names = {f.name for f in fields(SimulatorConfig)}
    unknown = sorted(set(patch) - names - {"api_key_set"})
    if unknown:
        raise ConfigurationError(f"unknown simulator knob(s) {unknown}")
    changes = {k: v for k, v in patch.items() if k in names}
    if "faults" in changes:
        changes["faults"] = FaultConfig.from_dict(changes["faults"])
    try:
        return replace(config, **changes)
    except TypeError as exc:  # pragma: no cover - replace() only fails on unknown names, checked above
        raise ConfigurationError(str(exc)) from exc


def limits_changed(old: SimulatorConfig, new: SimulatorConfig) -> bool:
    """Whether the rate-limit buckets must be rebuilt."""
    keys = ("rpm", "tpm", "burst_requests", "burst_tokens")
    return any(getattr(old, k) != getattr(new, k) for k in keys)


__all__ = ["FaultConfig", "SimulatorConfig", "apply_patch", "limits_changed"]
