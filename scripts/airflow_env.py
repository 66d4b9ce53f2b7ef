"""The environment that points a local Airflow (SQLite metadata, no scheduler) at this repository.

Used by the demo and by the end-to-end tests, so both run the DAG the way a deployment does:
connections come from ``AIRFLOW_CONN_*`` variables, the DAG and plugins from this checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]


def warehouse_connection(db_url: str) -> str:
    """``AIRFLOW_CONN_REVIEWLENS_WAREHOUSE`` for a postgresql:// URL (TCP, or a Unix socket in ``?host=``)."""
    u = urlsplit(db_url)
    socket_dir = parse_qs(u.query).get("host", [None])[0]
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": socket_dir or u.hostname or "127.0.0.1",
            "port": u.port or 5432,
            "login": u.username or "postgres",
            "password": u.password or "",
            "schema": u.path.lstrip("/"),
        }
    )


def llm_connection(base_url: str, api_key: str, **extra: object) -> str:
    """``AIRFLOW_CONN_REVIEWLENS_LLM``: host = base URL, password = key, extra = model and limits."""
    return json.dumps({"conn_type": "http", "host": base_url, "password": api_key, "extra": extra})


def airflow_env(
    home: Path, *, warehouse_url: str, llm_base_url: str, api_key: str, **llm_extra: object
) -> dict[str, str]:
    """Variables for a self-contained Airflow home with both ReviewLens connections."""
    home.mkdir(parents=True, exist_ok=True)
    paths = [str(REPO / "include"), str(REPO / "plugins")]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://localhost:8080/execution/",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PYTHONPATH": os.pathsep.join(paths),
        "AIRFLOW_CONN_REVIEWLENS_WAREHOUSE": warehouse_connection(warehouse_url),
        "AIRFLOW_CONN_REVIEWLENS_LLM": llm_connection(llm_base_url, api_key, **llm_extra),
    }
