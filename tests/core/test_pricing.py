"""Cost accounting from the editable price table."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewlens.config import DEFAULT_MODEL
from reviewlens.errors import ConfigurationError
from reviewlens.pricing import load_prices

PRICES = load_prices(None)


def test_default_table_has_dated_public_list_prices() -> None:
    assert PRICES.as_of
    mini = PRICES.price_for("gpt-4o-mini")
    assert (mini.input, mini.output) == (0.15, 0.60)
    assert (PRICES.price_for("gpt-4.1-mini").input, PRICES.price_for("gpt-4.1-mini").output) == (0.40, 1.60)
    assert (PRICES.price_for("gpt-4o").input, PRICES.price_for("gpt-4o").output) == (2.50, 10.00)


def test_cost_is_per_million_tokens() -> None:
    assert PRICES.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert PRICES.cost("gpt-4o", 1000, 200) == pytest.approx(0.0025 + 0.002)


def test_cached_tokens_are_part_of_prompt_tokens_and_billed_at_the_cached_rate() -> None:
    assert PRICES.cost("gpt-4o-mini", 1_000_000, 0, cached_tokens=400_000) == pytest.approx(
        0.6 * 0.15 + 0.4 * 0.075
    )
    # More cached tokens than prompt tokens cannot make the call cheaper than all-cached.
    assert PRICES.cost("gpt-4o-mini", 100, 0, cached_tokens=500) == pytest.approx(100 * 0.075 / 1e6)


def test_batch_requests_get_the_batch_discount() -> None:
    full = PRICES.cost("gpt-4o-mini", 10_000, 2_000)
    assert PRICES.cost("gpt-4o-mini", 10_000, 2_000, batch=True) == pytest.approx(full * 0.5)


def test_dated_snapshot_uses_its_family_price() -> None:
    assert PRICES.price_for("gpt-4o-mini-2024-07-18") == PRICES.price_for("gpt-4o-mini")
    assert PRICES.price_for("gpt-4o-2024-08-06") == PRICES.price_for("gpt-4o")


def test_local_simulator_is_free_and_known() -> None:
    assert PRICES.cost(DEFAULT_MODEL, 10_000, 10_000) == 0.0
    assert PRICES.is_priced(DEFAULT_MODEL)


def test_unknown_model_costs_zero_and_is_flagged_unpriced() -> None:
    assert PRICES.cost("llama-3-70b-local", 10_000, 10_000) == 0.0
    assert not PRICES.is_priced("llama-3-70b-local")
    assert not PRICES.price_for("gpt-4o-audio-preview").known  # only a date suffix maps to the family


def test_custom_price_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("as_of: '2030-01-01'\nmodels:\n  my-model: {input: 1, output: 2}\n")
    table = load_prices(path)
    assert table.cost("my-model", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert table.cost("my-model", 1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(
        1.0
    )  # no cached price
    assert not table.is_priced("other")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  m: {input: -1, output: 2}\n", r"models\.m\.input"),
        ("models:\n  m: {input: 1}\n", r"models\.m\.output"),
        ("models:\n  m: {input: 1, output: 2, batch_discount: 1.5}\n", "batch_discount"),
        ("modles: {}\n", "modles"),
        ("models: [1, 2\n", "cannot be read as YAML"),
    ],
)
def test_bad_price_file_says_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_prices(path)


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_prices(tmp_path / "none.yaml")
