"""The simulator as a subprocess (``start_process`` / ``python -m reviewlens.simulator``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from reviewlens.simulator import FaultConfig, SimulatorConfig, start_process
from tests.fixtures.simulator import SIM_API_KEY, bearer, chat_body, review_messages

INCLUDE = Path(__file__).resolve().parents[2] / "include"


def test_start_process_serves_and_its_handle_behaves_like_the_thread_one() -> None:
    config = SimulatorConfig(api_key=SIM_API_KEY, rpm=6000, faults=FaultConfig.of(not_json=1.0, max_faults=1))
    with start_process(config) as handle:
        assert handle.base_url.endswith("/v1")
        body = chat_body(review_messages({"r1": "Love it."}))
        with httpx.Client(base_url=handle.base_url, headers=bearer(SIM_API_KEY)) as client:
            statuses = [client.post("/chat/completions", json=body).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert [e["fault"] for e in handle.requests()] == ["not_json", None, None]
        assert handle.configure(seed=3)["seed"] == 3
        assert handle.stats()["requests"] == 3 and handle.stats()["cpu_s"] > 0


def test_cli_prints_ready_reads_key_from_env_and_exits_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(INCLUDE), "REVIEWLENS_SIM_API_KEY": SIM_API_KEY}
    env.pop("REVIEWLENS_SIM_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reviewlens.simulator", "--port", "0", "--faults", '{"server_error": 0.0}'],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:") and line.rstrip().endswith("/v1")
        base_url = line.split()[1]
        assert httpx.get(f"{base_url}/models").status_code == 401
        assert httpx.get(f"{base_url}/models", headers=bearer(SIM_API_KEY)).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
