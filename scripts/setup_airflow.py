"""Prepare an Airflow metadata database for ReviewLens: migrate it and create the `llm_provider` pool.

A task that names a pool which does not exist is never scheduled and hangs silently, so every
deployment path (the demo, docker-compose's init, the tests) runs this.
Usage: `python scripts/setup_airflow.py [--slots N]` with AIRFLOW_HOME / AIRFLOW__* set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

POOL_NAME = "llm_provider"
POOL_SLOTS = 4
POOL_DESCRIPTION = "Concurrent analyze_chunk tasks calling the LLM provider (ReviewLens)"


def run_airflow(env: dict[str, str] | None, *args: str) -> None:
    """Run this venv's Airflow CLI (else the one on PATH); show its output only if it fails."""
    local = Path(sys.executable).parent / "airflow"
    cmd = [str(local) if local.exists() else "airflow", *args]
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-20000:])
        sys.stderr.write(proc.stderr[-20000:])
        raise SystemExit(f"`airflow {' '.join(args)}` failed with exit code {proc.returncode}")


def setup(env: dict[str, str] | None = None, *, slots: int = POOL_SLOTS) -> None:
    """Migrate the metadata DB and create or resize the pool (both idempotent)."""
    run_airflow(env, "db", "migrate")
    run_airflow(env, "pools", "set", POOL_NAME, str(slots), POOL_DESCRIPTION)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slots", type=int, default=POOL_SLOTS)
    setup(slots=parser.parse_args().slots)
    print(f"Airflow metadata migrated; pool {POOL_NAME!r} ready")
