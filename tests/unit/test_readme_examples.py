"""Every GraphQL example in the README is valid against the schema."""

import re
from pathlib import Path

import pytest
from graphql import parse, validate

from ordergraph.schema.root import build_schema
from ordergraph.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
SCHEMA = build_schema(Settings())
BLOCKS = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_is_valid(block):
    errors = validate(SCHEMA._schema, parse(block))
    assert errors == [], [e.message for e in errors]
