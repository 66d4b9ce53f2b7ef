"""The analysis version: short, stable, and changing exactly with what shapes the answers."""

from __future__ import annotations

import re

import pytest

from reviewlens.config import LLMSettings
from reviewlens.parsing import SCHEMA_VERSION
from reviewlens.prompts import PROMPT_TEMPLATE_VERSION
from reviewlens.taxonomy import Taxonomy, load_taxonomy
from reviewlens.versioning import analysis_version

TAXONOMY = Taxonomy.of(["price", "quality", "other"])


def test_version_is_twelve_hex_digits_and_stable_across_processes() -> None:
    version = analysis_version("gpt-4o-mini", TAXONOMY, "1", "1")
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    # Pinned: a change here means every stored result would look stale. Only update on purpose.
    assert version == analysis_version("gpt-4o-mini", Taxonomy.of(["price", "quality", "other"]), "1", "1")
    assert version == "872e881c9aac"  # since K left the version (it was 2fa48f7c1286 with k=1)


def test_defaults_are_the_current_prompt_and_schema_versions() -> None:
    assert analysis_version("m", TAXONOMY) == analysis_version(
        "m", TAXONOMY, PROMPT_TEMPLATE_VERSION, SCHEMA_VERSION
    )


def test_version_changes_with_each_input() -> None:
    base = analysis_version("m", TAXONOMY)
    changed = {
        analysis_version("m2", TAXONOMY),
        analysis_version("m", Taxonomy.of(["price", "quality"])),
        analysis_version("m", Taxonomy.of(["quality", "price", "other"])),  # order is what the model sees
        analysis_version("m", TAXONOMY, prompt_template_version="999"),
        analysis_version("m", TAXONOMY, schema_version="999"),
    }
    assert base not in changed and len(changed) == 5


def test_reviews_per_request_is_not_part_of_the_version() -> None:
    # K is a batching choice: changing it must not re-pay every review already analysed.
    with pytest.raises(TypeError):
        analysis_version("m", TAXONOMY, reviews_per_request=5)  # type: ignore[call-arg]
    pipeline = pytest.importorskip("reviewlens.pipeline")
    llm = LLMSettings(base_url="http://unused/v1", model="m")
    versions = {
        pipeline.PipelineConfig(llm=llm.with_(reviews_per_request=k), taxonomy=TAXONOMY).version
        for k in (1, 5, 10, 20)
    }
    assert versions == {analysis_version("m", TAXONOMY)}


def test_descriptions_do_not_change_the_version() -> None:
    default = load_taxonomy(None)
    assert analysis_version("m", default) == analysis_version("m", Taxonomy(default.ids))
