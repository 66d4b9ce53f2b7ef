"""Loading the category taxonomy: default file, overrides in every accepted shape, clear errors."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from reviewlens.errors import ConfigurationError
from reviewlens.taxonomy import MAX_CATEGORIES, Taxonomy, load_taxonomy


def test_default_taxonomy_is_a_compact_ordered_snake_case_e_commerce_set() -> None:
    taxonomy = load_taxonomy(None)
    assert 15 <= len(taxonomy) <= 18
    assert taxonomy.ids[:2] == ("shipping", "delivery")
    for needed in ("price", "quality", "sizing", "customer_service", "returns", "battery", "other"):
        assert needed in taxonomy
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in taxonomy)
    assert taxonomy.description("customer_service")


def test_taxonomy_is_immutable() -> None:
    taxonomy = load_taxonomy(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        taxonomy.ids = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize(
    "override",
    [
        ["price", "quality", "customer_service"],
        '["price", "quality", "customer_service"]',
        "price, quality, customer_service",
        "- price\n- quality\n- customer_service\n",
        {"price": "Cost", "quality": None, "customer_service": "Support"},
        '{"categories": [{"id": "price"}, {"id": "quality"}, {"id": "customer_service"}]}',
    ],
    ids=["list", "json-string", "comma-string", "yaml-string", "mapping", "json-categories-object"],
)
def test_override_in_any_accepted_shape_replaces_the_default_keeping_order(override: object) -> None:
    assert load_taxonomy(None, override=override).ids == ("price", "quality", "customer_service")


@pytest.mark.parametrize("empty", [None, "", []])
def test_empty_override_means_the_default(empty: object) -> None:
    assert load_taxonomy(None, override=empty) == load_taxonomy(None)


def test_override_can_name_a_yaml_or_json_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "cats.yaml"
    yaml_file.write_text("categories:\n  - id: fit\n    description: How it fits\n  - id: other\n")
    json_file = tmp_path / "cats.json"
    json_file.write_text(json.dumps(["fit", "other"]))
    from_yaml = load_taxonomy(None, override=str(yaml_file))
    assert from_yaml.ids == ("fit", "other")
    assert from_yaml.description("fit") == "How it fits"
    assert load_taxonomy(None, override=json_file).ids == ("fit", "other")
    assert load_taxonomy(yaml_file).ids == ("fit", "other")


def test_missing_file_error_names_the_path_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigurationError, match=r"nope\.yaml.*does not exist.*default"):
        load_taxonomy(path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_taxonomy(None, override=str(path))


def test_malformed_yaml_file_is_a_configuration_error_with_an_example(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("categories: [price, quality\n  - : :")
    with pytest.raises(ConfigurationError, match=r"bad\.yaml.*neither valid JSON nor YAML.*snake_case"):
        load_taxonomy(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["price", "Customer Service"], r"entry 2 \('Customer Service'\) is not a snake_case id"),
        (["price", "price"], "lists category 'price' twice"),
        ("{}", "holds no list of categories"),
        ('{"categories": 3}', "holds no list of categories"),
        ([{"id": "price", "description": 3}], "description of 'price' must be a string"),
        ([f"c{i}" for i in range(MAX_CATEGORIES + 1)], "at most 100 are allowed"),
        ([1, 2], "is not a snake_case id"),
    ],
)
def test_bad_taxonomy_says_what_is_wrong(override: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_taxonomy(None, override=override)


def test_taxonomy_of_validates_ids_like_a_file() -> None:
    assert Taxonomy.of(["a", "b_c"]).ids == ("a", "b_c")
    with pytest.raises(ConfigurationError):
        Taxonomy.of(["Bad-Id"])
