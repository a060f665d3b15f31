"""ordergraph: one GraphQL graph over the whole order management workflow."""

__version__ = "0.1.0"
