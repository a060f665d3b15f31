"""Thin query/mutation functions and dataloaders.

Each domain module contributes one Query and one Mutation class; the root schema merges them.
"""

from ordergraph.resolvers.catalog import CatalogMutation, CatalogQuery

QUERIES = [CatalogQuery]
MUTATIONS = [CatalogMutation]
