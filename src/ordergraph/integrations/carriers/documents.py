"""Printable shipping documents as PDF (fpdf2): carrier labels and packing slips.

- `render_label(...)`: a 4×6 inch thermal-printer label, one page per parcel, with the
  carrier's name and service, ship-from and ship-to blocks, the parcel's weight, our reference,
  and the tracking number as a Code 39 barcode (start/stop ``*``) above its human-readable form.
- `render_packing_slip(order_number, ship_from, ship_to, lines, packages)`: an A4 page (more
  when the lines do not fit) with the order number as a Code 39 barcode, both addresses, a
  table of the lines (SKU, name, quantity) and one row per package (carrier, service, tracking
  number, weight).

Both return the PDF's bytes. The built-in PDF fonts cover Latin-1 only, so text outside it is
transliterated (``Łódź`` prints as ``Lodz``) and whatever cannot be is printed as ``?``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from fpdf import FPDF

from ordergraph.integrations.carriers.base import Address, Label, Parcel

LABEL_SIZE_MM = (101.6, 152.4)  # 4 × 6 in
_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class SlipPackage:
    """One package listed on a packing slip."""

    carrier: str
    service: str | None = None
    tracking_number: str | None = None
    weight_grams: int | None = None

    @classmethod
    def from_label(cls, label: Label, weight_grams: int | None = None) -> SlipPackage:
        return cls(label.carrier, label.service, label.tracking_number, weight_grams)


def pdf_text(text: object) -> str:
    """`text` reduced to what the core PDF fonts can print (Latin-1)."""
    out = []
    for ch in str(text):
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
        out.append(base or {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ß": "ss"}.get(ch, "?"))
    return "".join(out)


def format_weight(grams: int) -> str:
    return f"{grams / 1000:.2f} kg"


def _barcode(pdf: FPDF, value: str, x: float, y: float, width: float, height: float) -> float:
    """Draw `value` as Code 39 inside `width` mm; returns the drawn width."""
    text = f"*{value.upper()}*"
    wide = min(1.2, width / (len(text) * 16 / 3))  # a character is 3 wide + 6 narrow + 1 gap
    pdf.set_fill_color(0, 0, 0)
    pdf.code39(text, x=x, y=y, w=wide, h=height)
    return len(text) * wide * 16 / 3


MIN_FONT_SIZE = 6.0


def fit_text(pdf: FPDF, text: str, width: float, size: float) -> tuple[str, float]:
    """`text` and the largest font size (at most `size`, at least MIN_FONT_SIZE, by half
    points) at which it fits in `width` mm with the current font family and style; if it does
    not fit even at the smallest size, it is cut and ends with "..."."""
    pdf.set_font(size=size)
    while size > MIN_FONT_SIZE and pdf.get_string_width(text) > width:
        size = max(MIN_FONT_SIZE, size - 0.5)
        pdf.set_font(size=size)
    if pdf.get_string_width(text) > width:
        while text and pdf.get_string_width(text + "...") > width:
            text = text[:-1]
        text += "..."
    return text, size


def _address_block(pdf: FPDF, title: str, address: Address, size: int) -> None:
    pdf.set_font("Helvetica", "B", 7)
    pdf.cell(0, 4, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", size)
    width = pdf.w - pdf.r_margin - pdf.l_margin - 1
    for line in address.lines():
        text, _ = fit_text(pdf, pdf_text(line), width, size)
        pdf.cell(0, size * 0.45, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(size=size)


def render_label(
    *,
    carrier_name: str,
    service_name: str,
    tracking_number: str,
    ship_from: Address,
    ship_to: Address,
    parcels: Sequence[Parcel],
    reference: str | None,
    ship_date: date,
    estimated_delivery: date | None,
) -> bytes:
    """The label PDF for a shipment: one 4×6 in page per parcel (see the module docstring)."""
    pdf = FPDF(unit="mm", format=LABEL_SIZE_MM)
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(False)
    pdf.set_title(f"{carrier_name} label {tracking_number}")
    pdf.set_creator("ordergraph")
    width = LABEL_SIZE_MM[0] - 2 * _MARGIN
    for index, parcel in enumerate(parcels, start=1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 8, pdf_text(carrier_name.upper()), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, pdf_text(service_name), new_x="LMARGIN", new_y="NEXT")
        pdf.line(_MARGIN, pdf.get_y() + 1, _MARGIN + width, pdf.get_y() + 1)
        pdf.ln(3)
        _address_block(pdf, "FROM", ship_from, 8)
        pdf.ln(3)
        _address_block(pdf, "SHIP TO", ship_to, 12)
        pdf.ln(3)
        pdf.set_font("Helvetica", "", 8)
        details = [
            f"Weight: {format_weight(parcel.weight_grams)}",
            f"Parcel {index} of {len(parcels)}",
            f"Ship date: {ship_date.isoformat()}",
        ]
        if estimated_delivery is not None:
            details.append(f"Estimated delivery: {estimated_delivery.isoformat()}")
        if reference:
            details.append(f"Ref: {pdf_text(reference)}")
        for line in details:
            pdf.cell(0, 4, line, new_x="LMARGIN", new_y="NEXT")
        y = LABEL_SIZE_MM[1] - _MARGIN - 32
        _barcode(pdf, tracking_number, _MARGIN, y, width, 22)
        pdf.set_xy(_MARGIN, y + 24)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(width, 6, tracking_number, align="C")
    return bytes(pdf.output())


def render_packing_slip(
    order_number: str,
    ship_from: Address,
    ship_to: Address,
    lines: Sequence[tuple[str, str, int]],
    packages: Sequence[SlipPackage],
) -> bytes:
    """The packing slip PDF: lines are ``(sku, name, quantity)``; see the module docstring."""
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(f"Packing slip {order_number}")
    pdf.set_creator("ordergraph")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "Packing slip", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 6, f"Order {pdf_text(order_number)}", new_x="LMARGIN", new_y="NEXT")
    _barcode(pdf, pdf_text(order_number), 15, pdf.get_y() + 2, 80, 12)
    pdf.set_y(pdf.get_y() + 18)
    top = pdf.get_y()
    _address_block(pdf, "FROM", ship_from, 10)
    left_bottom = pdf.get_y()
    pdf.set_left_margin(110)
    pdf.set_xy(110, top)
    _address_block(pdf, "SHIP TO", ship_to, 10)
    pdf.set_left_margin(15)
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)
    pdf.set_font("Helvetica", "", 10)
    with pdf.table(col_widths=(35, 115, 30), text_align=("LEFT", "LEFT", "RIGHT")) as table:
        table.row(["SKU", "Item", "Quantity"])
        for sku, name, quantity in lines:
            table.row([pdf_text(sku), pdf_text(name), str(quantity)])
    total = sum(quantity for _, _, quantity in lines)
    pdf.ln(2)
    pdf.cell(0, 6, f"Total units: {total}", new_x="LMARGIN", new_y="NEXT")
    if packages:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, f"Packages ({len(packages)})", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        with pdf.table(col_widths=(35, 45, 65, 35)) as table:
            table.row(["Carrier", "Service", "Tracking number", "Weight"])
            for p in packages:
                weight = "" if p.weight_grams is None else format_weight(p.weight_grams)
                row = [p.carrier, p.service or "", p.tracking_number or "", weight]
                table.row([pdf_text(v) for v in row])
    return bytes(pdf.output())
