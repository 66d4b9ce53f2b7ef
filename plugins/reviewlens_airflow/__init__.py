"""The thin Airflow-facing layer of ReviewLens: connections and Params in, core settings out."""

import sys
from pathlib import Path

# A deployment that copies the repository as its AIRFLOW_HOME (the demo, docker-compose) has the
# core package in include/ beside plugins/; make it importable without extra PYTHONPATH setup.
_INCLUDE = Path(__file__).resolve().parents[2] / "include"
if _INCLUDE.is_dir() and str(_INCLUDE) not in sys.path:
    sys.path.append(str(_INCLUDE))
