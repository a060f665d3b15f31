"""Input objects built from a conversion plan made once per type, not re-derived per value.

Strawberry converts an argument by walking its type for every value: it resolves each field's
type, checks the wrappers, enums and scalars, and builds the dataclass (about 6 % of
placeOrder's CPU for its nested input). Its `from_input` hook lets a type build its own
value: `use_planned_inputs` gives every input type of a schema one that follows a plan
computed the first time it is used. The result is what Strawberry builds: the same classes,
the same defaults (fields the client left out take their Python default; nullable ones
without a default are None) and the same values. Types the plan does not know (GlobalID,
custom scalars, anything else) go through Strawberry's own conversion, with their path.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.enum import has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any, InputContext, tuple], Any]

# Scalars whose GraphQL value graphql-core has already made the Python value: kept as they are.
_PLAIN = (str, int, float, bool, decimal.Decimal, datetime.datetime, datetime.date, datetime.time, uuid.UUID)


def _plain(value: Any, ctx: InputContext, path: tuple) -> Any:
    return value


def _converter(type_: Any) -> Convert:
    """How to convert a GraphQL input value of `type_` (None and UNSET pass through)."""
    if isinstance(type_, LazyType):
        type_ = type_.resolve_type()
    if isinstance(type_, StrawberryOptional):
        return _converter(type_.of_type)
    if isinstance(type_, StrawberryList):
        item = _converter(type_.of_type)

        def convert_list(value: Any, ctx: InputContext, path: tuple) -> Any:
            if value is None or value is UNSET:
                return value
            if item is _plain:  # copied: graphql-core may share a default list between requests
                return list(value)
            return [item(v, ctx, (*path, i)) for i, v in enumerate(value)]

        return convert_list
    if (isinstance(type_, type) and issubclass(type_, _PLAIN)) or has_enum_definition(type_) or (
        isinstance(type_, type) and issubclass(type_, enum.Enum)
    ):
        return _plain
    if has_object_definition(type_) and type_.__strawberry_definition__.is_input:
        return _input(type_)

    def by_strawberry(value: Any, ctx: InputContext, path: tuple) -> Any:
        if value is None or value is UNSET:
            return value
        return InputContext(ctx.info, ctx.config, ctx.scalar_registry, path).convert(value, type_)

    return by_strawberry


def _input(cls: type) -> Convert:
    definition = cls.__strawberry_definition__
    plan: list[tuple[str, str, Convert]] | None = None
    implicit_none: dict[str, None] = {}

    def build(value: Any, ctx: InputContext, path: tuple) -> Any:
        nonlocal plan, implicit_none
        if value is None or value is UNSET:
            return value
        if plan is None:  # made on first use: field types may be lazy until the schema is built
            name = ctx.config.name_converter.from_field
            plan = [(name(f), f.python_name, _converter(f.resolve_type(type_definition=definition)))
                    for f in definition.fields]
            implicit_none = {f.python_name: None for f in definition.fields
                             if f.default_value is MISSING and f.default_factory is MISSING}
        kwargs = dict(implicit_none)
        for graphql_name, python_name, convert in plan:
            if graphql_name in value:
                field_value = value[graphql_name]
                kwargs[python_name] = (field_value if field_value is None or convert is _plain
                                       else convert(field_value, ctx, (*path, graphql_name)))
        return cls(**kwargs)

    return build


def _from_input(cls: type, value: Mapping[str, Any], ctx: InputContext) -> Any:
    convert = _plans.get(cls)
    if convert is None:
        convert = _plans[cls] = _input(cls)
    return convert(value, ctx, ctx.path)


_plans: dict[type, Convert] = {}


def use_planned_inputs(schema: Any) -> int:
    """Give every input type of `schema` that builds its value the usual way the planned
    conversion; returns how many. Call it once the schema is built."""
    count = 0
    for concrete in schema.schema_converter.type_map.values():
        definition = concrete.definition
        if getattr(definition, "is_input", False) and definition.from_input is None and not definition.is_one_of:
            definition.from_input = _from_input
            count += 1
    return count
