"""Inventory workflows: receipts, adjustments, transfers, stock policy (no GraphQL)."""

import pytest
from tortoise.exceptions import IntegrityError

from ordergraph.db import execute
from ordergraph.models import Event, InventoryLevel, StockMovement
from ordergraph.workflows import inventory as inv
from ordergraph.workflows import reservations as res
from ordergraph.workflows.errors import DomainError, ValidationFailed
from tests import factories as f

ACTOR = "staff:test"


async def ledger() -> list[tuple]:
    rows = await StockMovement.all().order_by("id").prefetch_related("warehouse")
    return [(m.warehouse.code, m.kind.value, m.quantity, m.on_hand_after, m.allocated_after, m.reserved_after,
             m.reason, m.actor) for m in rows]


async def quantities(w, v) -> tuple[int, int, int, int, int] | None:
    lvl = await InventoryLevel.get_or_none(warehouse=w, variant=v)
    return (lvl.on_hand, lvl.allocated, lvl.reserved, lvl.safety_stock, lvl.reorder_point) if lvl else None


def codes(exc: ValidationFailed) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((p.code.value, tuple(p.field)) for p in exc.problems)


@pytest.fixture
def increased(monkeypatch):
    """The variants the backorder hook was told about (the hook itself is the orders' concern)."""
    calls: list[int] = []

    async def record(variant_id: int, actor: str) -> None:
        calls.append(variant_id)

    monkeypatch.setattr(inv, "on_stock_increased", record)
    monkeypatch.setattr(res, "on_stock_increased", record)
    return calls


async def test_receive_creates_the_level_and_writes_a_receipt(db, increased):
    w, v = await f.warehouse("W1"), await f.variant("SKU-1")
    (m,) = await inv.receive_stock("W1", "SKU-1", 12, "PO arrived", "PO-7", ACTOR)
    assert (m.kind.value, m.quantity, m.reference) == ("RECEIPT", 12, "PO-7")
    await inv.receive_stock("W1", "SKU-1", 3, "", "", ACTOR)
    assert await quantities(w, v) == (15, 0, 0, 0, 0)
    assert await ledger() == [
        ("W1", "RECEIPT", 12, 12, 0, 0, "PO arrived", ACTOR),
        ("W1", "RECEIPT", 3, 15, 0, 0, "", ACTOR),
    ]
    assert increased == [v.id, v.id]


async def test_receive_reports_every_problem_and_writes_nothing(db, increased):
    await f.warehouse("W1")
    with pytest.raises(ValidationFailed) as err:
        await inv.receive_stock("NOPE", "GHOST", 0, "", "x" * 101, ACTOR)
    assert codes(err.value) == sorted([
        ("NOT_FOUND", ("warehouse",)), ("UNKNOWN_SKU", ("sku",)),
        ("QUANTITY_OUT_OF_RANGE", ("quantity",)), ("INVALID_VALUE", ("reference",)),
    ])
    assert await InventoryLevel.all().count() == 0
    assert await StockMovement.all().count() == 0
    assert increased == []


async def test_adjust_up_and_down_even_into_safety_stock(db, increased):
    w, v = await f.warehouse("W1"), await f.variant("SKU-1")
    await InventoryLevel.create(warehouse=w, variant=v, on_hand=10, allocated=2, reserved=1, safety_stock=4)
    await inv.adjust_stock("W1", "SKU-1", 5, " found in aisle 3 ", ACTOR)
    await inv.adjust_stock("W1", "SKU-1", -12, "damaged", ACTOR)
    assert await quantities(w, v) == (3, 2, 1, 4, 0)
    assert await ledger() == [
        ("W1", "ADJUSTMENT", 5, 15, 2, 1, "found in aisle 3", ACTOR),
        ("W1", "ADJUSTMENT", -12, 3, 2, 1, "damaged", ACTOR),
    ]
    assert increased == [v.id]  # only the increase


async def test_adjust_below_committed_is_negative_stock_and_writes_nothing(db, increased):
    w, v = await f.warehouse("W1"), await f.variant("SKU-1")
    await InventoryLevel.create(warehouse=w, variant=v, on_hand=10, allocated=6, reserved=3)
    with pytest.raises(DomainError) as err:
        await inv.adjust_stock("W1", "SKU-1", -2, "count", ACTOR)
    assert (err.value.code.value, err.value.field, err.value.details) == (
        "NEGATIVE_STOCK", ["delta"], {"on_hand": 10, "committed": 9})
    assert await quantities(w, v) == (10, 6, 3, 0, 0)
    await f.variant("SKU-2")
    with pytest.raises(DomainError) as err:  # no level yet: nothing to take from, none created
        await inv.adjust_stock("W1", "SKU-2", -1, "count", ACTOR)
    assert err.value.code.value == "NEGATIVE_STOCK"
    assert await InventoryLevel.all().count() == 1
    assert await StockMovement.all().count() == 0
    assert increased == []


async def test_adjust_validation(db):
    await f.warehouse("W1")
    await f.variant("SKU-1")
    with pytest.raises(ValidationFailed) as err:
        await inv.adjust_stock("W1", "SKU-1", 0, "  ", ACTOR)
    assert codes(err.value) == [("QUANTITY_OUT_OF_RANGE", ("delta",)), ("REQUIRED", ("reason",))]
    assert await StockMovement.all().count() == 0


async def test_transfer_moves_units_in_one_reference(db, increased):
    a, b = await f.warehouse("A"), await f.warehouse("B")
    v = await f.variant("SKU-1")
    await InventoryLevel.create(warehouse=a, variant=v, on_hand=10, allocated=2, safety_stock=3)
    out, into = await inv.transfer_stock("A", "B", "SKU-1", 5, "rebalance", ACTOR)
    assert out.reference == into.reference and out.reference.startswith("TRF-")
    assert await quantities(a, v) == (5, 2, 0, 3, 0)
    assert await quantities(b, v) == (5, 0, 0, 0, 0)
    assert await ledger() == [
        ("A", "TRANSFER_OUT", -5, 5, 2, 0, "rebalance", ACTOR),
        ("B", "TRANSFER_IN", 5, 5, 0, 0, "rebalance", ACTOR),
    ]
    assert increased == [v.id]


async def test_transfer_may_not_dip_into_safety_stock(db, increased):
    a, b = await f.warehouse("A"), await f.warehouse("B")
    v = await f.variant("SKU-1")
    await InventoryLevel.create(warehouse=a, variant=v, on_hand=10, allocated=2, reserved=1, safety_stock=3)
    with pytest.raises(DomainError) as err:
        await inv.transfer_stock("A", "B", "SKU-1", 5, "", ACTOR)
    assert err.value.code.value == "INSUFFICIENT_STOCK"
    assert err.value.details == {"shortages": [{"sku": "SKU-1", "requested": 5, "available": 4}]}
    assert await quantities(a, v) == (10, 2, 1, 3, 0)
    assert await quantities(b, v) is None
    assert await StockMovement.all().count() == 0
    assert increased == []


async def test_transfer_errors(db):
    await f.warehouse("A")
    await f.variant("SKU-1")
    with pytest.raises(DomainError) as err:
        await inv.transfer_stock("A", "A", "SKU-1", 1, "", ACTOR)
    assert (err.value.code.value, err.value.field) == ("SAME_WAREHOUSE", ["toWarehouse"])
    with pytest.raises(ValidationFailed) as err:
        await inv.transfer_stock("A", "NOPE", "GHOST", -1, "", ACTOR)
    assert codes(err.value) == sorted([
        ("NOT_FOUND", ("toWarehouse",)), ("UNKNOWN_SKU", ("sku",)), ("QUANTITY_OUT_OF_RANGE", ("quantity",)),
    ])
    await f.warehouse("B")
    with pytest.raises(DomainError) as err:  # no stock at all in the source
        await inv.transfer_stock("A", "B", "SKU-1", 1, "", ACTOR)
    assert err.value.code.value == "INSUFFICIENT_STOCK"
    assert await InventoryLevel.all().count() == 0
    assert await StockMovement.all().count() == 0


async def test_set_stock_policy_writes_a_policy_row_and_low_stock(db, increased):
    w, v = await f.warehouse("W1"), await f.variant("SKU-1")
    lvl = await InventoryLevel.create(warehouse=w, variant=v, on_hand=10, allocated=2)
    (m,) = await inv.set_stock_policy("W1", "SKU-1", 3, 6, ACTOR)  # available 8 → 5 ≤ 6: low
    assert await quantities(w, v) == (10, 2, 0, 3, 6)
    assert await ledger() == [
        ("W1", "POLICY", 0, 10, 2, 0, "safety_stock 0→3; reorder_point 0→6", ACTOR),
    ]
    events = [(e.type, e.data) for e in await Event.filter(aggregate_type="InventoryLevel", aggregate_id=lvl.id).order_by("sequence")]
    level = {"warehouse_id": w.id, "variant_id": v.id, "on_hand": 10, "allocated": 2, "reserved": 0,
             "safety_stock": 3, "available": 5, "reorder_point": 6}
    assert events == [
        ("STOCK_POLICY_CHANGED", {"warehouse": "W1", "sku": "SKU-1", "before": {"safety_stock": 0, "reorder_point": 0},
                                  "after": {"safety_stock": 3, "reorder_point": 6}}),
        ("STOCK_CHANGED", {**level, "kind": "POLICY", "quantity": 0, "reference": ""}),
        ("LOW_STOCK", level),
    ]
    assert increased == []
    await inv.set_stock_policy("W1", "SKU-1", 1, 6, ACTOR)  # lowering safety stock frees units
    assert increased == [v.id]
    assert await Event.filter(type="LOW_STOCK").count() == 1  # still low: no second crossing


async def test_set_stock_policy_validation(db):
    await f.warehouse("W1")
    with pytest.raises(ValidationFailed) as err:
        await inv.set_stock_policy("W1", "GHOST", -1, -2, ACTOR)
    assert codes(err.value) == sorted([
        ("UNKNOWN_SKU", ("sku",)), ("INVALID_VALUE", ("safetyStock",)), ("INVALID_VALUE", ("reorderPoint",)),
    ])
    assert await StockMovement.all().count() == 0


async def test_adjust_down_past_the_reorder_point_records_low_stock(db):
    w, v = await f.warehouse("W1"), await f.variant("SKU-1")
    await f.stock(w, v, 10, reorder_point=4)
    await inv.adjust_stock("W1", "SKU-1", -5, "shrinkage", ACTOR)
    assert await Event.filter(type="LOW_STOCK").count() == 0  # 5 > 4
    await inv.adjust_stock("W1", "SKU-1", -1, "shrinkage", ACTOR)
    [low] = await Event.filter(type="LOW_STOCK")
    assert (low.data["available"], low.actor) == (4, ACTOR)


async def test_check_constraints_reject_raw_updates(db):
    w, v = await f.warehouse("W1"), await f.variant("SKU-1")
    lvl = await InventoryLevel.create(warehouse=w, variant=v, on_hand=2, allocated=1)
    for sql in (
        f"UPDATE inventory_levels SET on_hand = on_hand - 3 WHERE id = {lvl.id}",
        f"UPDATE inventory_levels SET allocated = 3 WHERE id = {lvl.id}",
        f"UPDATE inventory_levels SET reserved = -1 WHERE id = {lvl.id}",
    ):
        with pytest.raises(IntegrityError):
            await execute(sql)
    assert await quantities(w, v) == (2, 1, 0, 0, 0)
