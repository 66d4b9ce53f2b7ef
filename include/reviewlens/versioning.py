"""A short, stable identifier of "what produced this analysis", stored with every result.

Results with different versions must never be mixed in one aggregate, and a re-run with the same
version can skip reviews already analysed. The version changes exactly when something that shapes
the model's answer or its validation changes:

- the model name (exact string, e.g. ``gpt-4o-mini-2024-07-18``);
- the taxonomy ids **and their order** (descriptions are not sent to the model, so not included);
- ``PROMPT_TEMPLATE_VERSION`` (wording/layout of the prompt);
- ``SCHEMA_VERSION`` (the parser's validation and normalisation rules).

Decision: ``reviews_per_request`` (K) is **not** part of the version. K is a batching choice — the
template, the taxonomy, the schema and the model are the same for K = 1 and K = 20 — and hashing it
made every change of K re-pay every review already analysed. Reviews are sent under neutral aliases
in a fenced array and answered item by item, so on the local endpoint every K gives the same labels
(``docs/benchmarks.md``, "Tokens and cost"); a real model may be nudged a little by its neighbours,
which is accepted like any other sampling noise. Likewise the response_format kind in force and the
retry settings are not part of it.

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
) -> str:
    """12-hex-digit version of (model, taxonomy ids in order, prompt template, reply schema)."""
    canonical = json.dumps(
        {
            "model": model,
            "taxonomy": list(taxonomy.ids),
            "prompt": str(prompt_template_version),
            "schema": str(schema_version),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
