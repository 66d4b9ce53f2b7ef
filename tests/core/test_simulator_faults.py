"""Each fault kind is observable over HTTP, targetable, and reproducible from the seed."""

from __future__ import annotations

import ast
import json
import re
import time

import httpx
import pytest

from reviewlens.simulator import FaultConfig, SimulatorConfig, SimulatorHandle
from tests.fixtures.simulator import SIM_API_KEY, bearer, chat_body, review_messages

REVIEWS = {"r1": "Love it, great quality.", "r2": "Broke in a day, awful.", "r3": "It is a lamp."}


def _post(
    handle: SimulatorHandle, body: dict, timeout: float = 5.0, client: httpx.Client | None = None
) -> httpx.Response:
    url, headers = f"{handle.base_url}/chat/completions", bearer(SIM_API_KEY)
    if client is not None:
        return client.post(url, json=body, headers=headers, timeout=timeout)
    return httpx.post(url, json=body, headers=headers, timeout=timeout)


def _packed(**extra: object) -> dict:
    return chat_body(review_messages(REVIEWS), **extra)


def _content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def _faulted(simulator: SimulatorHandle, **faults: object) -> None:
    simulator.configure(faults=FaultConfig.of(**faults))


def test_rate_limit_burst_gives_429_with_retry_after_regardless_of_budget(simulator: SimulatorHandle) -> None:
    _faulted(simulator, rate_limit_burst=1.0, retry_after_s=2.5)
    response = _post(simulator, _packed())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3" and response.headers["retry-after-ms"] == "2500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert simulator.requests()[-1]["fault"] == "rate_limit_burst"


def test_server_error_gives_random_5xx_from_the_configured_set(simulator: SimulatorHandle) -> None:
    _faulted(simulator, server_error=1.0)
    with httpx.Client() as client:
        statuses = {_post(simulator, _packed(), client=client).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503} and len(statuses) >= 2
    assert {e["fault"] for e in simulator.requests()} == {"server_error"}


def test_hang_outlasts_the_client_timeout_and_is_logged_when_the_client_leaves(
    simulator: SimulatorHandle,
) -> None:
    _faulted(simulator, hang=1.0)  # default hang_s is 120 s
    with pytest.raises(httpx.ReadTimeout):
        _post(simulator, _packed(), timeout=0.3)
    deadline = time.monotonic() + 3
    while not simulator.requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    (entry,) = simulator.requests()
    assert entry["fault"] == "hang" and entry["status"] == 499


def test_reset_sends_headers_and_part_of_the_body_then_drops_the_connection(
    simulator: SimulatorHandle,
) -> None:
    _faulted(simulator, reset=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        _post(simulator, _packed())
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{simulator.base_url}/chat/completions",
            json=_packed(stream=True),
            headers=bearer(SIM_API_KEY),
        ) as response,
    ):
        assert response.status_code == 200
        list(response.iter_lines())
    assert [e["fault"] for e in simulator.requests()] == ["reset", "reset"]


def test_stream_cut_ends_the_stream_cleanly_but_before_done(simulator: SimulatorHandle) -> None:
    _faulted(simulator, stream_cut=1.0)
    response = _post(simulator, _packed(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert "data: " in response.text and "[DONE]" not in response.text
    assert '"finish_reason":"stop"' not in response.text
    # Not applicable to a non-streaming request: that one is answered normally.
    assert json.loads(_content(_post(simulator, _packed())))["results"]


def test_not_json_answers_prose(simulator: SimulatorHandle) -> None:
    _faulted(simulator, not_json=1.0)
    content = _content(_post(simulator, _packed()))
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_wrong_schema_answers_json_with_wrong_fields_or_values(simulator: SimulatorHandle) -> None:
    _faulted(simulator, wrong_schema=1.0)
    for _ in range(6):
        data = json.loads(_content(_post(simulator, _packed())))
        results = data.get("results")
        if results is None:
            assert "analysis" in data  # wrong top-level key
            continue
        assert all(r["sentiment"] == "very good" and isinstance(r["categories"], str) for r in results)


def test_wrapped_json_is_prose_fenced_or_sloppy_but_repairable(simulator: SimulatorHandle) -> None:
    _faulted(simulator, wrapped_json=1.0)
    for _ in range(8):
        content = _content(_post(simulator, _packed()))
        with pytest.raises(json.JSONDecodeError):
            json.loads(content)
        fenced = re.search(r"```json\n(.*)\n```", content, re.S)
        if fenced:
            repaired = json.loads(re.sub(r",(\s*[\]}])", r"\1", fenced.group(1)))
        else:
            repaired = ast.literal_eval(content)
        assert [r["id"] for r in repaired["results"]] == ["r1", "r2", "r3"]


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("drop_id", lambda ids: ids == ["r1", "r3"]),
        ("dup_id", lambda ids: ids == ["r1", "r2", "r3", "r2"]),
        ("extra_id", lambda ids: ids[:3] == ["r1", "r2", "r3"] and ids[3].startswith("extra-")),
    ],
)
def test_id_faults_act_on_the_targeted_review(simulator: SimulatorHandle, kind: str, check) -> None:
    _faulted(simulator, **{kind: 1.0, "only_review_ids": ["r2"]})
    ids = [r["id"] for r in json.loads(_content(_post(simulator, _packed())))["results"]]
    assert check(ids), ids
    # A request without the targeted id is left alone.
    single = chat_body(review_messages({"r9": "fine"}))
    assert [r["id"] for r in json.loads(_content(_post(simulator, single)))["results"]] == ["r9"]


def test_match_text_targets_requests_by_review_text(simulator: SimulatorHandle) -> None:
    _faulted(simulator, server_error=1.0, match_text="POISON")
    assert _post(simulator, chat_body(review_messages({"a": "this has poison in it"}))).status_code >= 500
    assert _post(simulator, chat_body(review_messages({"b": "clean"}))).status_code == 200


def test_max_faults_makes_a_fault_happen_exactly_once(simulator: SimulatorHandle) -> None:
    _faulted(simulator, server_error=1.0, max_faults=1)
    assert [_post(simulator, _packed()).status_code >= 500 for _ in range(3)] == [True, False, False]


def _fault_and_latency_trace(handle: SimulatorHandle) -> list[tuple[str | None, float]]:
    with httpx.Client() as client:
        for _ in range(25):
            _post(handle, _packed(), client=client)
    return [(e["fault"], e["latency_ms"]) for e in handle.requests()]


def test_same_seed_gives_same_faults_and_latencies(simulator_factory) -> None:
    def config(seed: int) -> SimulatorConfig:
        return SimulatorConfig(
            api_key=SIM_API_KEY,
            seed=seed,
            latency_median_ms=1,
            latency_p95_ms=4,
            faults=FaultConfig.of(server_error=0.2, not_json=0.2, drop_id=0.2),
        )

    first = _fault_and_latency_trace(simulator_factory(config(42)))
    second = _fault_and_latency_trace(simulator_factory(config(42)))
    other = _fault_and_latency_trace(simulator_factory(config(43)))
    assert first == second
    assert first != other
    assert {f for f, _ in first} >= {None, "server_error"}
    assert len({ms for _, ms in first}) > 20  # latencies vary, reproducibly


def test_reset_restarts_the_seeded_sequence(simulator: SimulatorHandle) -> None:
    simulator.configure(faults=FaultConfig.of(server_error=0.5), seed=7)
    with httpx.Client() as client:
        before = [_post(simulator, _packed(), client=client).status_code for _ in range(10)]
        simulator.reset()
        after = [_post(simulator, _packed(), client=client).status_code for _ in range(10)]
    assert before == after and len(set(before)) > 1
