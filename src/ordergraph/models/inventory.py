"""Stock per (warehouse, variant), its ledger, and checkout reservations."""

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from ordergraph.models.enums import MovementKind, ReservationStatus


class InventoryLevel(Model):
    id = fields.IntField(primary_key=True)
    warehouse = fields.ForeignKeyField(
        "ordergraph.Warehouse", related_name="inventory_levels", on_delete=fields.RESTRICT
    )
    variant = fields.ForeignKeyField(
        "ordergraph.ProductVariant", related_name="inventory_levels", on_delete=fields.RESTRICT
    )
    on_hand = fields.IntField(default=0)
    allocated = fields.IntField(default=0)
    reserved = fields.IntField(default=0)
    safety_stock = fields.IntField(default=0)
    reorder_point = fields.IntField(default=0)
    bin_location = fields.CharField(max_length=32, default="")  # where pickers find it: aisle-rack-shelf
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "inventory_levels"
        unique_together = (("warehouse", "variant"),)
        constraints = (
            CheckConstraint(check="on_hand >= 0", name="ck_inventory_on_hand_nonneg"),
            CheckConstraint(check="allocated >= 0", name="ck_inventory_allocated_nonneg"),
            CheckConstraint(check="reserved >= 0", name="ck_inventory_reserved_nonneg"),
            CheckConstraint(check="safety_stock >= 0", name="ck_inventory_safety_nonneg"),
            CheckConstraint(check="reorder_point >= 0", name="ck_inventory_reorder_nonneg"),
            CheckConstraint(
                check="allocated + reserved <= on_hand", name="ck_inventory_committed_le_on_hand"
            ),
        )

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated - self.reserved - self.safety_stock


class StockMovement(Model):
    """The inventory ledger: one row per change of any quantity."""

    id = fields.BigIntField(primary_key=True)
    warehouse = fields.ForeignKeyField(
        "ordergraph.Warehouse", related_name="stock_movements", on_delete=fields.RESTRICT
    )
    variant = fields.ForeignKeyField(
        "ordergraph.ProductVariant", related_name="stock_movements", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(MovementKind)
    quantity = fields.IntField()  # signed change of the quantity the kind concerns
    on_hand_after = fields.IntField()
    allocated_after = fields.IntField()
    reserved_after = fields.IntField()
    reason = fields.CharField(max_length=500, default="")
    reference = fields.CharField(max_length=100, default="")  # SO-…, RES-…, TRF-…
    order_id = fields.IntField(null=True)
    actor = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stock_movements"
        indexes = (("variant_id", "warehouse_id"),)


class Reservation(Model):
    id = fields.IntField(primary_key=True)
    token = fields.CharField(max_length=40, unique=True)  # RES-…
    channel = fields.ForeignKeyField(
        "ordergraph.SalesChannel", related_name="reservations", on_delete=fields.RESTRICT
    )
    cart_reference = fields.CharField(max_length=200, default="")
    status = fields.CharEnumField(ReservationStatus, default=ReservationStatus.ACTIVE)
    expires_at = fields.DatetimeField(db_index=True)
    owner = fields.CharField(max_length=200)  # principal that made it
    order_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    lines: fields.ReverseRelation["ReservationLine"]

    class Meta:
        table = "reservations"


class ReservationLine(Model):
    id = fields.IntField(primary_key=True)
    reservation = fields.ForeignKeyField(
        "ordergraph.Reservation", related_name="lines", on_delete=fields.CASCADE
    )
    warehouse = fields.ForeignKeyField(
        "ordergraph.Warehouse", related_name="reservation_lines", on_delete=fields.RESTRICT
    )
    variant = fields.ForeignKeyField(
        "ordergraph.ProductVariant", related_name="reservation_lines", on_delete=fields.RESTRICT
    )
    quantity = fields.IntField()

    class Meta:
        table = "reservation_lines"
        constraints = (CheckConstraint(check="quantity > 0", name="ck_reservation_qty_pos"),)
