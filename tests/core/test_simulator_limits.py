"""RPM/TPM enforcement over HTTP: 429s, Retry-After and the x-ratelimit-* headers."""

from __future__ import annotations

import re
import time

import httpx

from reviewlens.simulator import SimulatorConfig
from tests.fixtures.simulator import SIM_API_KEY, bearer, chat_body, review_messages

_DURATION = re.compile(r"^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")


def _client(handle) -> httpx.Client:
    return httpx.Client(base_url=handle.base_url, headers=bearer(SIM_API_KEY), timeout=5.0)


def test_rpm_exceeded_gets_429_with_retry_after_and_ratelimit_headers(simulator_factory) -> None:
    handle = simulator_factory(SimulatorConfig(api_key=SIM_API_KEY, rpm=60, tpm=100_000))
    body = chat_body(review_messages({"r1": "Great value."}))
    with _client(handle) as client:
        ok = client.post("/chat/completions", json=body)
        limited = client.post("/chat/completions", json=body)
    assert ok.status_code == 200 and limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert limited.headers["Retry-After"] == "1"
    assert 900 <= int(limited.headers["retry-after-ms"]) <= 1000
    for response in (ok, limited):
        assert response.headers["x-ratelimit-limit-requests"] == "60"
        assert response.headers["x-ratelimit-limit-tokens"] == "100000"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert _DURATION.match(response.headers["x-ratelimit-reset-requests"])
        assert _DURATION.match(response.headers["x-ratelimit-reset-tokens"])
    assert [e["status"] for e in handle.requests()] == [200, 429]


def test_tpm_charges_prompt_plus_completion_tokens(simulator_factory) -> None:
    handle = simulator_factory(SimulatorConfig(api_key=SIM_API_KEY, tpm=60_000, burst_tokens=400))
    body = chat_body(review_messages({"r1": "Great value. " * 20}))
    with _client(handle) as client:
        first = client.post("/chat/completions", json=body)
        usage = first.json()["usage"]
        assert int(first.headers["x-ratelimit-remaining-tokens"]) == 400 - usage["total_tokens"]
        second = client.post("/chat/completions", json=body)
    assert second.status_code == 429 and second.json()["error"]["type"] == "tokens"
    assert "x-ratelimit-limit-requests" not in second.headers  # only configured limits are reported


def test_bucket_refills_continuously_so_a_paced_client_is_never_limited(simulator_factory) -> None:
    # 1200 RPM with a one-request bucket: one request per 50 ms, no bursting.
    handle = simulator_factory(SimulatorConfig(api_key=SIM_API_KEY, rpm=1200, burst_requests=1))
    body = chat_body([{"role": "user", "content": "ok"}])
    with _client(handle) as client:
        unpaced = [client.post("/chat/completions", json=body).status_code for _ in range(5)]
        time.sleep(0.06)
        paced = []
        for _ in range(6):
            paced.append(client.post("/chat/completions", json=body).status_code)
            time.sleep(0.06)
    assert unpaced[0] == 200 and unpaced.count(429) >= 3
    assert paced == [200] * 6


def test_changing_limits_through_configure_resets_the_buckets(simulator_factory) -> None:
    handle = simulator_factory(SimulatorConfig(api_key=SIM_API_KEY, rpm=60))
    body = chat_body([{"role": "user", "content": "ok"}])
    with _client(handle) as client:
        assert client.post("/chat/completions", json=body).status_code == 200
        assert client.post("/chat/completions", json=body).status_code == 429
        handle.configure(rpm=600, burst_requests=5)
        assert [client.post("/chat/completions", json=body).status_code for _ in range(5)] == [200] * 5
        handle.configure(rpm=None)
        response = client.post("/chat/completions", json=body)
    assert response.status_code == 200 and "x-ratelimit-limit-requests" not in response.headers
