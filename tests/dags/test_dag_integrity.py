"""The DAG file imports cleanly and has the shape the design card promises."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["review_sentiment_daily"]


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "review_sentiment_daily" in dagbag.dag_ids


def test_pipeline_reads_like_its_sentence(dag):
    assert set(dag.task_ids) == {"check_setup", "plan_chunks", "analyze_chunk", "aggregate_day"}
    assert dag.get_task("plan_chunks").upstream_task_ids == {"check_setup"}
    # check_setup also hands every chunk what it proved about the endpoint (XCom), hence its edge.
    assert dag.get_task("analyze_chunk").upstream_task_ids == {"plan_chunks", "check_setup"}
    assert dag.get_task("aggregate_day").upstream_task_ids == {"analyze_chunk"}


def test_analyze_chunk_is_mapped_over_chunks_in_the_llm_pool(dag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    analyze = dag.get_task("analyze_chunk")
    assert isinstance(analyze, MappedOperator)
    assert analyze.pool == "llm_provider"
    assert analyze.retries >= 1


def test_aggregate_runs_even_when_a_day_has_no_chunks(dag):
    assert dag.get_task("aggregate_day").trigger_rule == "none_failed"


def test_schedule_gives_each_run_a_one_day_data_interval(dag):
    from datetime import datetime

    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    from airflow.timetables.interval import CronDataIntervalTimetable as CoreTimetable

    core = CoreTimetable("0 0 * * *", timezone="UTC")
    interval = core.infer_manual_data_interval(run_after=datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert (interval.end - interval.start).days == 1


def test_params_form_has_defaults_that_validate(dag):
    params = dag.params
    params.validate()
    assert params["chunk_size"] == 200
    assert params["day"] is None


def test_every_pool_the_dag_uses_exists_after_setup(dag, airflow_db):
    from airflow.models.pool import Pool

    pools = {task.pool for task in dag.tasks}
    for name in pools:
        assert Pool.get_pool(name) is not None, f"pool {name!r} missing: tasks would hang unscheduled"


def test_dag_files_stay_orchestration_only():
    source = (ROOT / "dags" / "review_sentiment_daily.py").read_text()
    assert "httpx" not in source and "psycopg" not in source and "SELECT" not in source


def test_core_package_has_no_airflow_import():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "include" / "reviewlens").rglob("*.py")
        if "import airflow" in p.read_text() or "from airflow" in p.read_text()
    ]
    assert offenders == []
