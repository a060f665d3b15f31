"""Carriers behind the `Carrier` Protocol: built-in LocalCarriers (econopost, swiftship) and
HttpCarrier; label and packing-slip PDFs; tracking-number check digits; a registry from settings.
"""

from ordergraph.integrations.carriers.base import (
    FINAL_STATUSES,
    SCANNED_STATUSES,
    SERVICE_LEVEL_ALIASES,
    Address,
    Carrier,
    CarrierError,
    CarrierErrorCode,
    Label,
    Parcel,
    RateQuote,
    ServiceLevel,
    TrackingStatus,
    TrackingUpdate,
    service_level_of,
    with_retries,
)
from ordergraph.integrations.carriers.documents import (
    SlipPackage,
    render_label,
    render_packing_slip,
)
from ordergraph.integrations.carriers.http import HttpCarrier
from ordergraph.integrations.carriers.local import (
    DOWN_MARKER,
    FLAKY_MARKER,
    UNSERVICEABLE_MARKER,
    LabelRecord,
    LocalCarrier,
    add_business_days,
)
from ordergraph.integrations.carriers.profiles import ECONOPOST, PROFILES, SWIFTSHIP, Zone, zone_of
from ordergraph.integrations.carriers.registry import (
    LOCAL_CARRIER_CODES,
    available_carriers,
    get_carrier,
    local_carrier,
    reset_local_carriers,
    tracking_url,
)
from ordergraph.integrations.carriers.tracking import validate_tracking_number

__all__ = [
    "DOWN_MARKER",
    "ECONOPOST",
    "FINAL_STATUSES",
    "FLAKY_MARKER",
    "LOCAL_CARRIER_CODES",
    "PROFILES",
    "SCANNED_STATUSES",
    "SERVICE_LEVEL_ALIASES",
    "SWIFTSHIP",
    "UNSERVICEABLE_MARKER",
    "Address",
    "Carrier",
    "CarrierError",
    "CarrierErrorCode",
    "HttpCarrier",
    "Label",
    "LabelRecord",
    "LocalCarrier",
    "Parcel",
    "RateQuote",
    "ServiceLevel",
    "SlipPackage",
    "TrackingStatus",
    "TrackingUpdate",
    "Zone",
    "add_business_days",
    "available_carriers",
    "get_carrier",
    "local_carrier",
    "render_label",
    "render_packing_slip",
    "reset_local_carriers",
    "service_level_of",
    "tracking_url",
    "validate_tracking_number",
    "with_retries",
    "zone_of",
]
