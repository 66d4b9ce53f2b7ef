"""A short, stable identifier of "what produced this analysis", stored with every result.

Results with different versions must never be mixed in one aggregate, and a re-run with the same
version can skip reviews already analysed. The version changes exactly when something that shapes
the model's answer or its validation changes:

- the model name (exact string, e.g. ``gpt-4o-mini-2024-07-18``);
- the taxonomy ids **and their order** (descriptions are not sent to the model, so not included);
- ``PROMPT_TEMPLATE_VERSION`` (wording/layout of the prompt);
- ``SCHEMA_VERSION`` (the parser's validation and normalisation rules);
- ``reviews_per_request`` (K): reviews analysed side by side in one request influence each other a
  little, so K = 1 and K = 5 results are not mixed either.

It is the first 12 hex digits of a SHA-256 over a canonical JSON of those inputs: stable across
processes, machines and Python versions (no ``hash()``), short enough for a column and a log line.
"""

from __future__ import annotations

import hashlib
import json

from reviewlens.parsing import SCHEMA_VERSION
from reviewlens.prompts import PROMPT_TEMPLATE_VERSION
from reviewlens.taxonomy import Taxonomy


def analysis_version(
    model: str,
    taxonomy: Taxonomy,
    prompt_template_version: str = PROMPT_TEMPLATE_VERSION,
    schema_version: str = SCHEMA_VERSION,
    *,
    reviews_per_request: int = 1,
) -> str:
    """12-hex-digit version of (model, taxonomy ids in order, prompt template, reply schema, K)."""
    canonical = json.dumps(
        {
            "model": model,
            "taxonomy": list(taxonomy.ids),
            "prompt": str(prompt_template_version),
            "schema": str(schema_version),
            "k": int(reviews_per_request),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
