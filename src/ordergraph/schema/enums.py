"""Model enums exposed as GraphQL enums (one definition, in models/enums.py)."""

import strawberry

from ordergraph.models import enums as m
from ordergraph.workflows.errors import ErrorCode as _ErrorCode

ErrorCode = strawberry.enum(_ErrorCode, name="ErrorCode")
BackorderPolicy = strawberry.enum(m.BackorderPolicy)
ChannelKind = strawberry.enum(m.ChannelKind)
AllocationStrategy = strawberry.enum(m.AllocationStrategy)
StockPolicy = strawberry.enum(m.StockPolicy)
CaptureMode = strawberry.enum(m.CaptureMode)
MovementKind = strawberry.enum(m.MovementKind)
ReservationStatus = strawberry.enum(m.ReservationStatus)
OrderStatus = strawberry.enum(m.OrderStatus)
HoldReason = strawberry.enum(m.HoldReason)
ServiceLevel = strawberry.enum(m.ServiceLevel)
AllocationStatus = strawberry.enum(m.AllocationStatus)
PaymentStatus = strawberry.enum(m.PaymentStatus)
TransactionKind = strawberry.enum(m.TransactionKind)
FulfillmentStatus = strawberry.enum(m.FulfillmentStatus)
PickListKind = strawberry.enum(m.PickListKind)
PickListStatus = strawberry.enum(m.PickListStatus)
CarrierSelection = strawberry.enum(m.CarrierSelection)
ShipmentStatus = strawberry.enum(m.ShipmentStatus)
TrackingStatus = strawberry.enum(m.TrackingStatus)
TrackingSource = strawberry.enum(m.TrackingSource)
ShipmentDirection = strawberry.enum(m.ShipmentDirection)
ReturnStatus = strawberry.enum(m.ReturnStatus)
ReturnReason = strawberry.enum(m.ReturnReason)
ItemCondition = strawberry.enum(m.ItemCondition)
Disposition = strawberry.enum(m.Disposition)
ExceptionKind = strawberry.enum(m.ExceptionKind)
Severity = strawberry.enum(m.Severity)
ExceptionStatus = strawberry.enum(m.ExceptionStatus)
Team = strawberry.enum(m.Team)
