"""The committed schema.graphql is the schema the code defines (it is reviewed in diffs)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from ordergraph.schema.root import schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
REGENERATE = "`make schema` (runs `ordergraph export-schema --output schema.graphql`)"


def test_committed_schema_matches_the_code():
    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE.name} is missing; create it with {REGENERATE}"
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    current = schema_sdl()
    if current != committed:
        diff = list(
            difflib.unified_diff(
                committed.splitlines(), current.splitlines(), "schema.graphql (committed)", "schema (code)", lineterm=""
            )
        )
        shown = "\n".join(diff[:80]) + (f"\n… {len(diff) - 80} more diff lines" if len(diff) > 80 else "")
        pytest.fail(
            f"schema.graphql is out of date with the code. Regenerate it with {REGENERATE} "
            f"and review the diff:\n{shown}",
            pytrace=False,
        )
