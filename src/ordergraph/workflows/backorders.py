"""Backordered lines are allocated automatically when stock arrives, oldest order first."""

from __future__ import annotations


async def on_stock_increased(variant_id: int, actor: str) -> None:
    """Called by inventory workflows after stock of `variant_id` became more available.

    Filled in by the allocation workflow (see workflows/allocation.py).
    """
    from ordergraph.workflows.allocation import allocate_backorders  # noqa: PLC0415

    await allocate_backorders(variant_id, actor)
