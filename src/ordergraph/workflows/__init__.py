"""The order workflow, one module per stage. Every public function is a use case.

Workflows never import Strawberry: they take plain values and an actor, raise
`DomainError`/`ValidationFailed` for expected failures, and return models.
"""
