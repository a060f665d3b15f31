"""Experiment, not the app: the real app with its query-limit validation rules built once.

`ordergraph.schema.root.build_schema` registers `lambda: QueryDepthLimiter(...)` and
`lambda: MaxAliasesLimiter(...)`. Each call of those factories (one per request) builds a new
ValidationRule *class*, and Strawberry's `ValidationCache` keys its LRU on
(schema, document, validation_rules): the key never repeats, so every request is validated
from scratch and the cache fills with dead entries. This variant memoizes the two
`create_validator` functions before the schema is built, which is what building the rules
once in `build_schema` would do, and changes nothing else. Measure it with:

    .venv/bin/python bench/place_order.py --app-entry _variant_validation_once:create_app --app-dir bench
    .venv/bin/python bench/order_query.py --app-entry _variant_validation_once:create_app --app-dir bench
"""

from __future__ import annotations

import functools

from strawberry.extensions import max_aliases, query_depth_limiter

query_depth_limiter.create_validator = functools.cache(query_depth_limiter.create_validator)
max_aliases.create_validator = functools.cache(max_aliases.create_validator)

from ordergraph.app import create_app as _create_app  # noqa: E402


def create_app():
    return _create_app()
