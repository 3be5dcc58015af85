"""Invoice drafts → Jurnal's sales_invoices body, and Mekari's signature, on recorded payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sambung.plugin import Delivery, draft_of
from sambung.testing.accounting import delivery_of
from sambung_jurnal import JurnalSink
from sambung_jurnal.client import (
    digest,
    http_date,
    invoice_id,
    mekari_headers,
    next_month,
    signing_string,
)
from sambung_jurnal.mapping import invoice_body

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = JurnalSink.Settings.model_validate(
    {
        "client_id": "client",
        "client_secret": "secret",
        "items": {"KSA-01": "Es Kopi Susu Aren", "TEH-05": "Teh Tarik"},
        "default_item": "Lain-lain",
        "customers": {"kemang": "Pelanggan Kemang"},
        "charge_items": {
            "service_charge": "Service Charge",
            "tax": "PPN Keluaran",
            "rounding": "Pembulatan",
            "discount": "Diskon",
        },
    }
)


def delivery(name: str, *, revision: int = 1) -> Delivery:
    """A recorded unified payload as the dispatcher hands it to the sink."""
    return delivery_of((FIXTURES / name).read_text(encoding="utf-8"), revision=revision)


def total(body: dict[str, object]) -> Decimal:
    lines = body["sales_invoice"]["transaction_lines_attributes"]  # type: ignore[index]
    return sum((Decimal(l["quantity"]) * Decimal(l["rate"]) for l in lines), Decimal(0))  # noqa: E741


def test_a_sale_becomes_an_invoice_keyed_by_its_number() -> None:
    draft = draft_of(delivery("transaction.json"), "SMB-")
    body = invoice_body(draft, SETTINGS)
    invoice = body["sales_invoice"]

    assert invoice["custom_id"] == invoice["transaction_no"] == draft.number
    assert invoice["transaction_date"] == "2026-11-25"
    assert invoice["person_name"] == "Pelanggan Kemang"
    assert [line["product_name"] for line in invoice["transaction_lines_attributes"]] == [
        "Es Kopi Susu Aren",
        "Lain-lain",
        "Service Charge",
        "PPN Keluaran",
        "Diskon",
    ]
    assert invoice["transaction_lines_attributes"][-1]["rate"] == "-5000"
    assert total(body) == Decimal(61760)


def test_a_daily_summary_becomes_one_invoice_that_adds_up() -> None:
    body = invoice_body(draft_of(delivery("daily_summary.json"), "SMB-"), SETTINGS)

    assert body["sales_invoice"]["memo"].startswith("Daily sales kemang 2026-11-25")
    assert total(body) == Decimal(90085)


def test_the_signature_follows_mekaris_scheme() -> None:
    now = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    body = b'{"sales_invoice":{}}'
    headers = mekari_headers(
        "client", "secret", "POST", "/public/jurnal/api/v1/sales_invoices", body, now
    )

    assert headers["Date"] == http_date(now) == "Fri, 27 Nov 2026 01:02:03 GMT"
    assert signing_string(headers["Date"], "post", "/x?a=1") == (
        "date: Fri, 27 Nov 2026 01:02:03 GMT\nPOST /x?a=1 HTTP/1.1"
    )
    assert headers["Digest"] == digest(body) == DIGEST
    assert headers["Authorization"] == (
        'hmac username="client", algorithm="hmac-sha256", headers="date request-line", '
        f'signature="{SIGNATURE}"'
    )


def test_a_used_up_month_renews_on_the_first_in_jakarta() -> None:
    # 16:00 UTC on the 30th is 23:00 in Jakarta, still November; 18:00 UTC is December there.
    assert next_month(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)).isoformat() == (
        "2026-12-01T00:00:00+07:00"
    )
    assert next_month(datetime(2026, 11, 30, 18, 0, tzinfo=UTC)).isoformat() == (
        "2027-01-01T00:00:00+07:00"
    )
    assert next_month(datetime(2026, 12, 31, 12, 0, tzinfo=UTC)).isoformat() == (
        "2027-01-01T00:00:00+07:00"
    )


# Computed independently: `openssl dgst -sha256 [-hmac secret] -binary | base64`.
DIGEST = "SHA-256=mOBXR4DE5nzSeOip/0hiu/YgW1DWh9Jc3CWsxI6r0tE="
SIGNATURE = "10KCkMfxLct+HbnhFohuU8jO/YsMBcMLHsgc7I7iJXw="


def test_the_numeric_id_to_patch_is_sales_invoice_id_of_the_look_up() -> None:
    answer = json.loads((FIXTURES / "sales_invoice_answer.json").read_text(encoding="utf-8"))

    assert invoice_id(answer) == 33845071  # not the transaction_no, nor a line's id
    assert invoice_id({"sales_invoice": {"transaction_no": "SMB-1"}}) is None
    assert invoice_id({"sales_invoice": {"id": True}}) is None


def test_the_request_line_is_the_full_path_a_gateway_prefix_included() -> None:
    now = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    path = "/mekari/public/jurnal/api/v1/sales_invoices/33845071"
    headers = mekari_headers("client", "secret", "PATCH", path, b"{}", now)

    assert signing_string(headers["Date"], "PATCH", path) == (
        "date: Fri, 27 Nov 2026 01:02:03 GMT\n"
        "PATCH /mekari/public/jurnal/api/v1/sales_invoices/33845071 HTTP/1.1"
    )
    unprefixed = mekari_headers("client", "secret", "PATCH", path[len("/mekari") :], b"{}", now)
    assert headers["Authorization"] != unprefixed["Authorization"]
