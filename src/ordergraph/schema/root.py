"""The root schema: each domain's Query and Mutation merged, plus limits and caches."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types
from graphql import GraphQLError

from ordergraph.config import Settings, get_settings
from ordergraph.schema.errors import ERROR_TYPES
from ordergraph.schema.inputs import use_planned_inputs
from ordergraph.schema.metrics_ext import OperationMetrics
from ordergraph.resolvers import MUTATIONS, QUERIES
from ordergraph.resolvers.subscriptions import SubscriptionRoot


def _node_query() -> type:
    # A fresh class per schema: Strawberry binds the relay node field to the schema it is in.
    @strawberry.type(name="NodeQuery")
    class NodeQuery:
        node: relay.Node | None = relay.node()

    return NodeQuery


def _should_mask(error: GraphQLError) -> bool:
    # Errors we raise on purpose (GraphQLError with a message for the client) pass through;
    # anything else (an unexpected exception) is masked and logged.
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or get_settings()
    Query = merge_types("Query", (_node_query(), *QUERIES))
    Mutation = merge_types("Mutation", tuple(MUTATIONS))
    # Build the limit rules once: ValidationCache keys on the rule classes, so rules created
    # per request would make every request miss the cache.
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    extensions = [
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=1000),
        lambda: ValidationCache(maxsize=1000),
        lambda: MaskErrors(should_mask_error=_should_mask, error_message="Unexpected error."),
        OperationMetrics,
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    Subscription = merge_types("Subscription", (SubscriptionRoot,))
    schema = strawberry.Schema(
        query=Query, mutation=Mutation, subscription=Subscription, types=ERROR_TYPES, extensions=extensions
    )
    use_planned_inputs(schema)  # input objects built from a plan made once per type (schema/inputs.py)
    return schema


def schema_sdl() -> str:
    # The committed schema is the development one (introspection on), whatever the env says.
    return build_schema(Settings(environment="development")).as_str() + "\n"
