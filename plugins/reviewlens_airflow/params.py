"""The DAG's Params (the form of a manual trigger) and how they become a PipelineConfig."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from reviewlens.config import RunSettings, SourceSettings
from reviewlens.pipeline import PipelineConfig
from reviewlens.taxonomy import load_taxonomy
from reviewlens_airflow.hooks import ReviewLensLLMHook, WarehouseHook

PARAMS: dict[str, Param] = {
    "day": Param(
        None,
        type=["null", "string"],
        format="date",
        description="Analyze this UTC day (YYYY-MM-DD) instead of the run's data interval.",
    ),
    "chunk_size": Param(
        200, type="integer", minimum=1, maximum=20000, description="Reviews per mapped task."
    ),
    "reviews_per_request": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=50,
        description="Reviews packed into one request (default: the connection's, else 10).",
    ),
    "response_format": Param(
        None,
        type=["null", "string"],
        enum=[None, "auto", "json_schema", "json_object", "none"],
        description="Structured output mode (default: the connection's, else auto).",
    ),
    "source_kind": Param("postgres", type="string", enum=["postgres", "csv", "parquet", "jsonl"]),
    "source_table": Param("reviews", type="string", description="Source table (postgres source)."),
    "source_path": Param(
        None,
        type=["null", "string"],
        description="File, directory or glob for file sources; {ds} is replaced by the day.",
    ),
    "taxonomy": Param(
        None,
        type=["null", "array"],
        items={"type": "string"},
        description="Category ids to use instead of the default taxonomy.",
    ),
    "warehouse_schema": Param("public", type="string"),
    "dry_run": Param(
        False,
        type="boolean",
        description="Only estimate the day's requests, tokens and cost: nothing is sent, nothing is written.",
    ),
}


def build_config(params: dict[str, Any], *, shared_budget: bool = True) -> PipelineConfig:
    """Read the connections and the run's Params into one PipelineConfig."""
    llm = ReviewLensLLMHook().get_settings(
        reviews_per_request=params.get("reviews_per_request"),
        response_format=params.get("response_format"),
    )
    warehouse = WarehouseHook()
    source = SourceSettings(
        kind=params.get("source_kind") or "postgres",
        table=params.get("source_table") or "reviews",
        path=params.get("source_path"),
    )
    return PipelineConfig(
        llm=llm,
        source=source,
        run=RunSettings(chunk_size=int(params.get("chunk_size") or 200)),
        warehouse_schema=params.get("warehouse_schema") or "public",
        taxonomy=load_taxonomy(None, override=params.get("taxonomy")),
        budget_dsn=warehouse.conninfo() if shared_budget else None,
    )
