"""The closed set of review categories the model may assign, loaded from YAML or an override.

Sources, in order of precedence:

1. ``override`` (a DAG Param or a connection extra): a list of ids, a list of
   ``{"id": ..., "description": ...}`` objects, a mapping ``{id: description}``, a JSON or YAML
   string of any of those, a comma-separated string of ids, or a path to a ``.yaml``/``.yml``/
   ``.json`` file;
2. ``path``: a taxonomy file;
3. the packaged default ``data/taxonomy.yaml``.

A file holds either one of the shapes above or ``{"categories": [...]}`` (optionally with a
``version`` key, ignored). Ids must be unique snake_case; their order is kept because it is the
order the model sees (and part of the analysis version).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reviewlens.errors import ConfigurationError

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("data") / "taxonomy.yaml"
MAX_CATEGORIES = 100
_ID = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_FILE_SUFFIXES = (".yaml", ".yml", ".json")
_HOW_TO_FIX = (
    'Give a list of unique snake_case ids, e.g. ["shipping", "price", "customer_service"], '
    'or {"categories": [{"id": "shipping", "description": "..."}]}.'
)


@dataclass(frozen=True)
class Taxonomy:
    """An ordered, immutable set of snake_case category ids with optional one-line descriptions."""

    ids: tuple[str, ...]
    descriptions: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.descriptions:
            object.__setattr__(self, "descriptions", (None,) * len(self.ids))
        if len(self.descriptions) != len(self.ids):
            raise ValueError("descriptions must align with ids")

    def __contains__(self, category: object) -> bool:
        return category in self.ids

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def description(self, category: str) -> str | None:
        return self.descriptions[self.ids.index(category)]

    @classmethod
    def of(cls, ids: list[str] | tuple[str, ...]) -> Taxonomy:
        """Build a taxonomy from ids (validated like a loaded file); handy in tests and code."""
        return _build(list(ids), where="Taxonomy.of()")


def load_taxonomy(path: str | Path | None = None, override: Any = None) -> Taxonomy:
    """Load the taxonomy: ``override`` if given, else ``path``, else the packaged default.

    Raises ``ConfigurationError`` saying what is wrong, where, and how to fix it.
    """
    if override is not None and override != "" and override != []:
        return _from_override(override)
    return _from_file(Path(path) if path is not None else DEFAULT_TAXONOMY_PATH)


def _from_override(override: Any) -> Taxonomy:
    if isinstance(override, Path):
        return _from_file(override)
    if isinstance(override, str):
        text = override.strip()
        if text.lower().endswith(_FILE_SUFFIXES) and "\n" not in text:
            return _from_file(Path(text).expanduser())
        if text.startswith(("[", "{")) or "\n" in text:
            return _build(_parse_text(text, where="the taxonomy override"), where="the taxonomy override")
        # A bare comma-separated list is the easiest thing to type into a DAG Param.
        return _build([part.strip() for part in text.split(",")], where="the taxonomy override")
    return _build(override, where="the taxonomy override")


def _from_file(path: Path) -> Taxonomy:
    where = f"taxonomy file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"The {where} does not exist. Fix the path, or leave it unset to use the default taxonomy."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"The {where} cannot be read ({exc}). Make it a readable UTF-8 file."
        ) from None
    return _build(_parse_text(text, where=where), where=where)


def _parse_text(text: str, *, where: str) -> Any:
    try:
        # YAML is a superset of JSON, so one parser covers both; try JSON first for precise errors.
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{_cap(where)} is neither valid JSON nor YAML ({_one_line(exc)}). {_HOW_TO_FIX}"
        ) from None


def _build(data: Any, *, where: str) -> Taxonomy:
    if isinstance(data, Mapping) and "categories" in data:
        data = data["categories"]
    if isinstance(data, Mapping):
        data = [{"id": key, "description": value} for key, value in data.items()]
    if not isinstance(data, list | tuple) or not data:
        raise ConfigurationError(f"{_cap(where)} holds no list of categories. {_HOW_TO_FIX}")
    if len(data) > MAX_CATEGORIES:
        raise ConfigurationError(
            f"{_cap(where)} has {len(data)} categories; at most {MAX_CATEGORIES} are allowed "
            "(each one is paid for in every prompt). Merge related categories."
        )
    ids: list[str] = []
    descriptions: list[str | None] = []
    for position, entry in enumerate(data, start=1):
        category, description = _entry(entry, position=position, where=where)
        if category in ids:
            raise ConfigurationError(
                f"{_cap(where)} lists category {category!r} twice. Remove the duplicate."
            )
        ids.append(category)
        descriptions.append(description)
    return Taxonomy(tuple(ids), tuple(descriptions))


def _entry(entry: Any, *, position: int, where: str) -> tuple[str, str | None]:
    description: Any = None
    if isinstance(entry, Mapping):
        category, description = entry.get("id"), entry.get("description")
    else:
        category = entry
    if not isinstance(category, str) or not _ID.match(category):
        raise ConfigurationError(
            f"{_cap(where)}: entry {position} ({category!r}) is not a snake_case id "
            "(lower-case letters, digits and single underscores, starting with a letter). " + _HOW_TO_FIX
        )
    if description is not None and not isinstance(description, str):
        raise ConfigurationError(f"{_cap(where)}: the description of {category!r} must be a string.")
    return category, (" ".join(description.split()) or None) if description else None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
