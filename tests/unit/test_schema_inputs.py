"""Input objects built by the planned conversion (schema/inputs.py) equal Strawberry's own."""

import pytest
from graphql import GraphQLNonNull
from graphql.utilities import coerce_input_value
from strawberry.types.arguments import convert_argument

from ordergraph.schema.inputs import _from_input
from ordergraph.schema.root import build_schema

SCHEMA = build_schema()

CASES = [
    ("PlaceOrderInput", {
        "channel": "WEB", "customer": {"email": "a@example.com", "name": "Ada", "phone": "+1"},
        "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "X", "postalCode": "1", "country": "US",
                            "latitude": 40.5, "longitude": -74.25},
        "billingAddress": None, "externalId": "MK-1", "currency": "USD", "serviceLevel": "EXPRESS", "notes": "n",
        "lines": [{"sku": "A", "quantity": 2, "unitPrice": "10.50", "externalLineId": "L1"}, {"sku": "B", "quantity": 1}],
        "payment": {"token": "tok_approve", "method": "card"}, "reservationToken": "r",
    }),
    ("PlaceOrderInput", {  # the least a client sends: defaults and implicit nulls
        "channel": "WEB", "customer": {"email": "a@example.com", "name": "Ada"},
        "shippingAddress": {"name": "Ada", "line1": "1", "city": "X", "postalCode": "1", "country": "US"},
        "lines": [{"sku": "A", "quantity": 1}],
    }),
    ("InspectionInput", {"returnLineId": "7", "quantity": 1, "condition": "DAMAGED", "disposition": "DISPOSE"}),
    ("OrderFilter", {"status": ["ALLOCATED", "SHIPPED"], "placedFrom": "2026-11-01T00:00:00Z", "onHold": False}),
]


def _strawberry_type(name: str):
    for concrete in SCHEMA.schema_converter.type_map.values():
        if concrete.implementation.name == name:
            return concrete.definition
    raise LookupError(name)


@pytest.mark.parametrize(("name", "raw"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_planned_inputs_equal_strawberrys_conversion(name, raw):
    definition = _strawberry_type(name)
    assert definition.from_input is _from_input  # the schema uses the plan
    value = coerce_input_value(raw, GraphQLNonNull(SCHEMA._schema.get_type(name)))  # as graphql-core hands it over
    assert isinstance(value, dict), value
    args = (SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    planned = convert_argument(value, definition.origin, *args)
    definition.from_input = None  # Strawberry's own walk over the type
    try:
        walked = convert_argument(value, definition.origin, *args)
    finally:
        definition.from_input = _from_input
    assert type(planned) is definition.origin
    assert planned == walked
    assert repr(planned) == repr(walked)  # nested classes and enum members too, not just equal values
