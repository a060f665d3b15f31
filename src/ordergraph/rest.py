"""HTTP endpoints beside the graph: carrier webhooks and printable documents.

`POST /webhooks/carriers/{carrier}`: a carrier's tracking events. The signature header
(`Ordergraph-Signature: t=…,v1=…`, HMAC-SHA256 over the timestamp and the raw body) is checked
before anything is read; a stale timestamp is refused, so a captured delivery cannot be
replayed later; a redelivered event (the carrier's event id) changes nothing; an unknown
tracking number refuses the whole delivery. Answers: 200 with counts, 401 with the signature
problem's code, 404 for a carrier we do not offer, 400 for a body the carrier's format does
not allow, 422 for unknown tracking numbers. Nothing is written on a refusal.

`GET /documents/labels/{tracking_number}` and `GET /documents/packing-slips/{number}`: the PDFs,
for staff (or a partner of the order's channel) with an API key.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordergraph.auth.permissions import can_read_order
from ordergraph.auth.resolve import InvalidCredentials, viewer_from_credentials
from ordergraph.integrations.carriers import CarrierError, CarrierErrorCode
from ordergraph.integrations.webhooks.carriers import verify_carrier_webhook
from ordergraph.integrations.webhooks.signing import SIGNATURE_HEADER, WebhookSignatureError
from ordergraph.models import FulfillmentOrder, Order, Shipment
from ordergraph.models.enums import TrackingSource
from ordergraph.observability import log
from ordergraph.workflows.errors import DomainError
from ordergraph.workflows.shipping import packing_slip, record_tracking


def _error(status: int, code: str, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def carrier_webhook(request: Request) -> Response:
    carrier = request.path_params["carrier"]
    body = await request.body()
    try:
        updates = verify_carrier_webhook(carrier, request.headers.get(SIGNATURE_HEADER), body, now=time.time(),
                                         settings=request.app.state.settings)
    except WebhookSignatureError as exc:
        log.warning("webhook.refused", carrier=carrier, code=str(exc.code))
        return _error(401, str(exc.code), str(exc))
    except CarrierError as exc:
        if exc.code is CarrierErrorCode.CARRIER_MISCONFIGURED:
            return _error(404, "UNKNOWN_CARRIER", f"no carrier {carrier!r} sends webhooks here")
        return _error(400, str(exc.code), exc.message)
    if not updates:
        return JSONResponse({"received": 0, "applied": 0, "duplicates": 0})
    try:
        outcomes = await record_tracking(carrier, updates, TrackingSource.WEBHOOK, f"carrier:{carrier}")
    except DomainError as exc:
        return _error(422, str(exc.code), exc.message, **exc.details)
    applied = sum(o.applied for o in outcomes)
    return JSONResponse({"received": len(outcomes), "applied": applied, "duplicates": len(outcomes) - applied})


async def _viewer(request: Request):
    try:
        return await viewer_from_credentials(request.headers.get("authorization"), request.headers.get("x-api-key"))
    except InvalidCredentials as exc:
        raise PermissionError(str(exc)) from None


def _pdf(content: bytes, filename: str) -> Response:
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "private, no-store"})


async def label_document(request: Request) -> Response:
    shipment = await Shipment.get_or_none(tracking_number=request.path_params["tracking_number"])
    return await _document(request, shipment and shipment.order_id, lambda: shipment.label_document,
                           f"label-{request.path_params['tracking_number']}.pdf")


async def packing_slip_document(request: Request) -> Response:
    fo = await FulfillmentOrder.get_or_none(number=request.path_params["number"])
    if fo is None:
        return await _document(request, None, None, "")
    return await _document(request, fo.order_id, None, f"packing-slip-{fo.number}.pdf", fo_id=fo.id)


async def _document(request: Request, order_id: int | None, content, filename: str, fo_id: int | None = None) -> Response:
    try:
        viewer = await _viewer(request)
    except PermissionError as exc:
        return _error(401, "UNAUTHENTICATED", str(exc))
    if not viewer.authenticated:
        return _error(401, "UNAUTHENTICATED", "staff or partner credentials needed")
    if not viewer.is_staff and not viewer.is_partner:
        return _error(403, "FORBIDDEN", "staff or partner credentials needed")
    order = await Order.get_or_none(id=order_id) if order_id else None
    if order is None or not can_read_order(viewer, order):
        return _error(404, "NOT_FOUND", "no such document")  # another's document answers like a missing one
    data = content() if content is not None else await packing_slip(fo_id)
    return _pdf(bytes(data), filename)


def routes() -> list[Route]:
    return [
        Route("/webhooks/carriers/{carrier}", carrier_webhook, methods=["POST"]),
        Route("/documents/labels/{tracking_number}", label_document, methods=["GET"]),
        Route("/documents/packing-slips/{number}", packing_slip_document, methods=["GET"]),
    ]
