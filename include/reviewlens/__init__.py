"""ReviewLens core: LLM review analysis without any Airflow import."""

__version__ = "0.1.0"
