"""Thin query/mutation functions and dataloaders.

Each domain module contributes one Query and one Mutation class; the root schema merges them.
"""

from ordergraph.resolvers.catalog import CatalogMutation, CatalogQuery
from ordergraph.resolvers.exceptions import ExceptionMutation, ExceptionQuery, ResolutionMutation
from ordergraph.resolvers.fulfillment import FulfillmentMutation, FulfillmentQuery
from ordergraph.resolvers.inventory import InventoryMutation, InventoryQuery
from ordergraph.resolvers.kpis import KpiQuery
from ordergraph.resolvers.network import NetworkMutation, NetworkQuery
from ordergraph.resolvers.orders import OrderMutation, OrderQuery
from ordergraph.resolvers.returns import ReturnMutation, ReturnQuery

QUERIES = [CatalogQuery, NetworkQuery, OrderQuery, InventoryQuery, FulfillmentQuery, ReturnQuery, ExceptionQuery, KpiQuery]
MUTATIONS = [CatalogMutation, NetworkMutation, OrderMutation, InventoryMutation, FulfillmentMutation, ReturnMutation, ExceptionMutation, ResolutionMutation]
