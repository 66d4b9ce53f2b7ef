"""Fixtures of the reliability suite: a warehouse schema per test and a simulator with chosen faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reviewlens.simulator import FaultConfig, SimulatorConfig, SimulatorHandle, start_in_thread

KEY = "sk-reliability-7f3a9c2e5b1d4068"


@pytest.fixture
def key() -> str:
    return KEY


@pytest.fixture
def wh(pg_dsn: str, pg_schema: str) -> tuple[str, str]:
    """(dsn, schema): a fresh schema in the session database for the source table and the results."""
    return pg_dsn, pg_schema


@pytest.fixture
def endpoint() -> Iterator[Callable[..., SimulatorHandle]]:
    """Start the local endpoint with ``faults`` (FaultConfig.of keywords) and any SimulatorConfig knob."""
    handles: list[SimulatorHandle] = []

    def start(faults: dict | FaultConfig | None = None, **config: object) -> SimulatorHandle:
        config.setdefault("api_key", KEY)
        config.setdefault("seed", 7)
        handle = start_in_thread(SimulatorConfig(faults=FaultConfig.from_dict(faults), **config))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.close()
