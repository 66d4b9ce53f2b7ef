"""A local OpenAI-compatible endpoint: a lexicon analyzer behind the chat-completions API.

For demos, tests and benchmarks; point the connection at a real model for production. It reads
our prompt's ``<taxonomy>``/``<reviews>`` fences (see ``docs/contracts.md``), answers with a
deterministic VADER + keyword analysis, and can enforce RPM/TPM limits, add seeded latency and
inject faults. No Airflow import anywhere in this package.
"""

from __future__ import annotations

from reviewlens.simulator.config import FaultConfig, SimulatorConfig
from reviewlens.simulator.faults import FAULT_KINDS
from reviewlens.simulator.handle import SimulatorHandle, start_in_thread, start_process

__all__ = [
    "FAULT_KINDS",
    "FaultConfig",
    "SimulatorConfig",
    "SimulatorHandle",
    "start_in_thread",
    "start_process",
]
