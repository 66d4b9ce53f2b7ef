"""The endpoint probe streams one analysis over SSE and reports its speed, or says what is wrong."""

from __future__ import annotations

import pytest

from reviewlens.config import LLMSettings, Secret
from reviewlens.errors import ConfigurationError
from reviewlens.probe import main, probe
from reviewlens.simulator import SimulatorConfig


def test_probe_measures_time_to_first_token_and_speed(simulator_factory, sim_api_key):
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key, token_delay_ms=2))
    report = probe(LLMSettings(base_url=sim.base_url, api_key=Secret(sim_api_key)))
    assert report.reply_valid and report.problem is None
    assert report.models_listed >= 1
    assert 0 < report.ttft_ms <= report.latency_ms
    assert report.tokens_per_s > 0 and report.completion_tokens > 0
    streamed = [r for r in sim.requests() if r.get("stream")]
    assert len(streamed) == 1 and streamed[0]["status"] == 200


def test_probe_with_a_wrong_key_fails_before_any_completion(simulator_factory, sim_api_key, capsys):
    sim = simulator_factory(SimulatorConfig(api_key=sim_api_key))
    with pytest.raises(ConfigurationError, match="rejected the API key"):
        probe(LLMSettings(base_url=sim.base_url, api_key=Secret("sk-wrong-key-xyz")))
    assert [r for r in sim.requests() if r.get("review_ids")] == []


def test_probe_cli_names_an_unknown_model_and_what_is_offered(simulator, sim_api_key, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWLENS_API_KEY", sim_api_key)
    code = main(["--base-url", simulator.base_url, "--model", "gpt-nonexistent"])
    err = capsys.readouterr().err
    assert code == 2 and "gpt-nonexistent" in err and "reviewlens-sim-1" in err
