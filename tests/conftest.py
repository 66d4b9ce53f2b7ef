"""Shared fixtures: each fixture module is owned by the part of the code it serves.

Airflow reads its configuration when first imported, so the isolated Airflow home (SQLite
metadata, this repository's dags/ and plugins/) is set here, before any test module imports it.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("include", "plugins", "dags"):
    path = str(ROOT / sub)
    if path not in sys.path:
        sys.path.insert(0, path)

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="reviewlens-test-airflow-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins"), str(ROOT)]),
    }
)

pytest_plugins = ["tests.fixtures.simulator", "tests.fixtures.postgres", "tests.fixtures.airflow"]
