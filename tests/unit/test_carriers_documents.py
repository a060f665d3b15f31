"""Tracking-number check digits, and the label and packing-slip PDFs read back with pypdf.

The barcode is decoded from the PDF's drawing operators (its filled rectangles) with the
Code 39 table written out here, independently of the renderer.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from fpdf import FPDF
from pypdf import PdfReader

from ordergraph.integrations import carriers as c
from ordergraph.integrations.carriers.documents import MIN_FONT_SIZE, fit_text
from ordergraph.integrations.carriers.tracking import s10_check_digit, s10_number, swiftship_number

T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
FROM = c.Address(
    name="Ordergraph Fulfilment",
    line1="100 Dock Rd",
    city="Reno",
    postal_code="89501",
    country="US",
    company="Ordergraph Inc.",
    region="NV",
)
TO = c.Address(
    name="Zoë Łukasiewicz",
    line1="ul. Długa 5",
    city="Kraków",
    postal_code="31-147",
    country="PL",
    line2="m. 4",
    phone="+48 12 345 67 89",
)

# Code 39: 5 bars and 4 spaces per character, n(arrow)/w(ide), bars at even positions.
CODE39 = {
    "nnnwwnwnn": "0",
    "wnnwnnnnw": "1",
    "nnwwnnnnw": "2",
    "wnwwnnnnn": "3",
    "nnnwwnnnw": "4",
    "wnnwwnnnn": "5",
    "nnwwwnnnn": "6",
    "nnnwnnwnw": "7",
    "wnnwnnwnn": "8",
    "nnwwnnwnn": "9",
    "wnnnnwnnw": "A",
    "nnwnnwnnw": "B",
    "wnwnnwnnn": "C",
    "nnnnwwnnw": "D",
    "wnnnwwnnn": "E",
    "nnwnwwnnn": "F",
    "nnnnnwwnw": "G",
    "wnnnnwwnn": "H",
    "nnwnnwwnn": "I",
    "nnnnwwwnn": "J",
    "wnnnnnnww": "K",
    "nnwnnnnww": "L",
    "wnwnnnnwn": "M",
    "nnnnwnnww": "N",
    "wnnnwnnwn": "O",
    "nnwnwnnwn": "P",
    "nnnnnnwww": "Q",
    "wnnnnnwwn": "R",
    "nnwnnnwwn": "S",
    "nnnnwnwwn": "T",
    "wwnnnnnnw": "U",
    "nwwnnnnnw": "V",
    "wwwnnnnnn": "W",
    "nwnnwnnnw": "X",
    "wwnnwnnnn": "Y",
    "nwwnwnnnn": "Z",
    "nwnnnnwnw": "-",
    "nwnnwnwnn": "*",
}


def decode_code39(page) -> list[str]:
    """Every Code 39 barcode drawn on `page`, decoded from its filled rectangles."""
    rects = []
    for operands, op in page.get_contents().operations:
        if op == b"re":
            x, y, w, h = (float(v) for v in operands)
            rects.append((round(y, 2), round(h, 2), x, w))
    rows: dict[tuple, list] = {}
    for y, h, x, w in rects:
        rows.setdefault((y, h), []).append((x, w))
    found = []
    for bars in rows.values():
        if len(bars) < 15:
            continue  # table borders and rules, not a barcode
        bars.sort()
        threshold = (min(w for _, w in bars) + max(w for _, w in bars)) / 2
        text = ""
        for i in range(0, len(bars), 5):
            group = bars[i : i + 5]
            elements = []
            for j, (x, w) in enumerate(group):
                elements.append("w" if w > threshold else "n")
                if j < 4:
                    gap = group[j + 1][0] - (x + w)
                    elements.append("w" if gap > threshold else "n")
            text += CODE39.get("".join(elements), "?")
        found.append(text)
    return found


def test_s10_check_digits():
    assert s10_check_digit("12345678") == 5  # the UPU's worked example
    assert s10_check_digit("00000000") == 5  # 11 - 0 → 5
    assert s10_check_digit("00000008") == 0  # 11 - 1 → 10 → 0
    assert s10_number("RR", 12345678, "GB") == "RR123456785GB"
    assert c.validate_tracking_number("econopost", "RR123456785GB")
    assert c.validate_tracking_number("econopost", "CP000000080US")
    for bad in ["RR123456784GB", "RR12345678GB", "rr123456785gb", "RR1234567855GB", "", None]:
        assert not c.validate_tracking_number("econopost", bad), bad


def test_swiftship_luhn_check_digits():
    assert swiftship_number(12345678901) == "SW123456789015"
    assert swiftship_number(7992739871) == "SW079927398713"  # the classic Luhn example
    assert c.validate_tracking_number("swiftship", "SW079927398713")
    for bad in ["SW079927398714", "SW07992739871", "XX079927398713", "RR123456785GB"]:
        assert not c.validate_tracking_number("swiftship", bad), bad


def test_unknown_carriers_accept_any_alphanumeric_number():
    assert c.validate_tracking_number("restship", "1Z999AA10123456784")
    assert not c.validate_tracking_number("restship", "1Z 999")
    assert not c.validate_tracking_number("restship", "")


@pytest.mark.parametrize("profile", [c.ECONOPOST, c.SWIFTSHIP])
async def test_label_pdf_opens_and_carries_the_barcode_addresses_service_and_weights(profile):
    carrier = c.LocalCarrier(profile, clock=lambda: T0)
    parcels = [c.Parcel(1250, 30, 20, 10), c.Parcel(300)]
    to = c.Address(
        name="Ada Buyer",
        line1="1 Main St",
        city="Springfield",
        postal_code="12345",
        country="US",
        company="Acme",
    )
    label = await carrier.buy_label(FROM, to, parcels, profile.services[0].code, "SO-1001", "k")
    reader = PdfReader(io.BytesIO(label.document), strict=True)
    assert len(reader.pages) == 2
    page = reader.pages[0]
    assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx((288, 432))
    text = page.extract_text()
    for expected in [
        profile.name.upper(),
        profile.services[0].name,
        "FROM",
        "SHIP TO",
        "Ordergraph Inc.",
        "100 Dock Rd",
        "89501 Reno NV",
        "Ada Buyer",
        "Acme",
        "12345 Springfield",
        "Weight: 1.25 kg",
        "Parcel 1 of 2",
        "Ref: SO-1001",
        "Ship date: 2026-11-18",
        label.tracking_number,
    ]:
        assert expected in text, (expected, text)
    assert "Weight: 0.30 kg" in reader.pages[1].extract_text()
    assert "Parcel 2 of 2" in reader.pages[1].extract_text()
    assert decode_code39(page) == [f"*{label.tracking_number}*"]
    assert decode_code39(reader.pages[1]) == [f"*{label.tracking_number}*"]
    assert reader.metadata.title == f"{profile.name} label {label.tracking_number}"


def test_label_text_outside_latin1_is_transliterated():
    pdf = c.render_label(
        carrier_name="Econopost",
        service_name="Econopost Standard",
        tracking_number="CP123456785US",
        ship_from=FROM,
        ship_to=TO,
        parcels=[c.Parcel(100)],
        reference=None,
        ship_date=T0.date(),
        estimated_delivery=None,
    )
    text = PdfReader(io.BytesIO(pdf), strict=True).pages[0].extract_text()
    assert "Zoë Lukasiewicz" in text and "ul. Dluga 5" in text
    assert "31-147 Kraków" in text and "Ref:" not in text and "Estimated" not in text


def test_packing_slip_lists_lines_and_packages():
    lines = [("MUG-RED", "Red <mug> & saucer", 2), ("KETTLE-1", "Kettle, 1.7 l", 1)]
    packages = [
        c.SlipPackage("econopost", "econopost_standard", "CP123456785US", 1250),
        c.SlipPackage("swiftship"),
    ]
    pdf = c.render_packing_slip("SO-1001", FROM, TO, lines, packages)
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 1
    assert float(reader.pages[0].mediabox.width) == pytest.approx(595.28, abs=0.01)  # A4
    text = reader.pages[0].extract_text()
    for expected in [
        "Packing slip",
        "Order SO-1001",
        "Ordergraph Inc.",
        "Zoë Lukasiewicz",
        "MUG-RED",
        "Red <mug> & saucer",
        "KETTLE-1",
        "Kettle, 1.7 l",
        "Total units: 3",
        "Packages (2)",
        "CP123456785US",
        "1.25 kg",
        "econopost_standard",
        "swiftship",
    ]:
        assert expected in text, (expected, text)
    assert decode_code39(reader.pages[0]) == ["*SO-1001*"]


def test_a_long_packing_slip_flows_onto_more_pages():
    lines = [(f"SKU-{i:03d}", f"Item {i}", i) for i in range(1, 80)]
    pdf = c.render_packing_slip("SO-2", FROM, TO, lines, [])
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) >= 2
    text = "".join(p.extract_text() for p in reader.pages)
    assert "SKU-079" in text and f"Total units: {sum(range(1, 80))}" in text
    assert "Packages" not in text


def test_slip_package_from_label():
    label = c.Label(
        "swiftship",
        "swiftship_express",
        c.ServiceLevel.EXPRESS,
        "SW123456789015",
        D("16.50"),
        "USD",
        b"%PDF-",
        T0.date(),
        T0,
    )
    assert c.SlipPackage.from_label(label, 900) == c.SlipPackage(
        "swiftship", "swiftship_express", "SW123456789015", 900
    )


def test_long_address_lines_shrink_to_fit_the_label_and_never_overflow():
    pdf = FPDF(unit="mm")
    pdf.set_font("Helvetica", "", 12)
    assert fit_text(pdf, "1 Main St", 90, 12) == ("1 Main St", 12)
    text, size = fit_text(
        pdf, "Unit 4, The Old Brewery, 118-120 Long Acre Industrial Estate", 90, 12
    )
    assert text.startswith("Unit 4") and not text.endswith("...") and MIN_FONT_SIZE <= size < 12
    assert pdf.get_string_width(text) <= 90
    cut, size = fit_text(pdf, "X" * 200, 90, 12)
    assert (size, cut.endswith("...")) == (MIN_FONT_SIZE, True)
    assert pdf.get_string_width(cut) <= 90

    long_line = "Unit 4, The Old Brewery, 118-120 Long Acre Industrial Estate"
    to = c.Address(name="Ada", line1=long_line, city="Leeds", postal_code="LS1 1AA", country="GB")
    pdf_bytes = c.render_label(
        carrier_name="Econopost",
        service_name="Econopost Standard",
        tracking_number="CP123456785US",
        ship_from=FROM,
        ship_to=to,
        parcels=[c.Parcel(100)],
        reference="SO-1",
        ship_date=T0.date(),
        estimated_delivery=None,
    )
    page = PdfReader(io.BytesIO(pdf_bytes), strict=True).pages[0]
    assert long_line in page.extract_text()
    assert decode_code39(page) == ["*CP123456785US*"]
