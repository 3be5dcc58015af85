"""Invoice drafts → Accurate's save.do form, on recorded unified payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sambung.accounting import draft_of
from sambung.errors import DeliveryRejected
from sambung.sinks import Delivery
from sambung.testing.accounting import delivery_of
from sambung_accurate import AccurateSink
from sambung_accurate.client import api_signature, api_timestamp
from sambung_accurate.mapping import invoice_form

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = AccurateSink.Settings.model_validate(
    {
        "api_token": "aat.test",
        "signature_secret": "sig",
        "items": {"KSA-01": "100-KOPI-AREN", "TEH-05": "100-TEH-TARIK"},
        "default_item": "100-LAIN",
        "customers": {"kemang": "C-KEMANG"},
        "charge_items": {
            "service_charge": "400-SERVICE",
            "tax": "210-PPN",
            "rounding": "800-ROUND",
        },
    }
)


def delivery(name: str, *, revision: int = 1) -> Delivery:
    """A recorded unified payload as the dispatcher hands it to the sink."""
    return delivery_of((FIXTURES / name).read_text(encoding="utf-8"), revision=revision)


def form_total(form: list[tuple[str, str]]) -> Decimal:
    """What Accurate would total: lines (price x quantity less discount) less cashDiscount."""
    fields = dict(form)
    total = Decimal(0)
    index = 0
    while f"detailItem[{index}].itemNo" in fields:
        line = f"detailItem[{index}]"
        total += Decimal(fields[f"{line}.unitPrice"]) * Decimal(fields[f"{line}.quantity"])
        total -= Decimal(fields.get(f"{line}.itemCashDiscount", "0"))
        index += 1
    return total - Decimal(fields.get("cashDiscount", "0"))


def test_a_sale_becomes_one_invoice_that_adds_up_to_the_till() -> None:
    draft = draft_of(delivery("transaction.json"), "SMB-")
    form = invoice_form(draft, SETTINGS, branch="Kemang")

    assert form[:5] == [
        ("customerNo", "C-KEMANG"),
        ("transDate", "25/11/2026"),
        ("number", draft.number),
        ("description", "pawoon sale PW-88123 at kemang"),
        ("branchName", "Kemang"),
    ]
    fields = dict(form)
    assert fields["detailItem[0].itemNo"] == "100-KOPI-AREN"
    assert fields["detailItem[0].quantity"] == "2"
    assert fields["detailItem[0].unitPrice"] == "18000"
    assert fields["detailItem[1].itemNo"] == "100-LAIN"  # CRS-02 is not mapped
    assert fields["detailItem[2].itemNo"] == "400-SERVICE"
    assert fields["detailItem[3].itemNo"] == "210-PPN"
    assert fields["cashDiscount"] == "5000"
    assert form_total(form) == Decimal(61760)


def test_the_number_is_the_same_for_the_same_record_and_differs_between_records() -> None:
    first = draft_of(delivery("transaction.json"), "SMB-").number
    again = draft_of(delivery("transaction.json", revision=3), "SMB-").number
    summary = draft_of(delivery("daily_summary.json"), "SMB-").number

    assert first == again
    assert first != summary
    assert first.startswith("SMB-20261125-") and len(first) == len("SMB-20261125-") + 8


def test_a_daily_summary_becomes_one_invoice_of_net_lines() -> None:
    form = invoice_form(draft_of(delivery("daily_summary.json"), "SMB-"), SETTINGS)
    fields = dict(form)

    assert fields["description"] == "Daily sales kemang 2026-11-25: 2 sales, 1 refunds (sambung)"
    assert [fields[f"detailItem[{i}].itemNo"] for i in range(5)] == [
        "100-KOPI-AREN",
        "100-TEH-TARIK",
        "400-SERVICE",
        "210-PPN",
        "800-ROUND",
    ]
    assert fields["detailItem[0].quantity"] == "3"
    assert form_total(form) == Decimal(90085)
    assert "branchName" not in fields


def test_what_cannot_be_mapped_is_refused_with_what_to_set() -> None:
    bare = AccurateSink.Settings.model_validate({"api_token": "a", "signature_secret": "s"})
    draft = draft_of(delivery("transaction.json"), "SMB-")

    with pytest.raises(DeliveryRejected, match="default_customer"):
        invoice_form(draft, bare)
    with pytest.raises(DeliveryRejected, match=r"KSA-01.*default_item"):
        invoice_form(draft, bare.model_copy(update={"default_customer": "C-1"}))


def test_a_refund_is_not_posted_as_an_invoice_one_by_one() -> None:
    refund = delivery("transaction.json")
    body = json.loads(refund.payload) | {"type": "refund"}
    refund = Delivery(**{**refund.__dict__, "payload": json.dumps(body)})

    with pytest.raises(DeliveryRejected, match="sales return"):
        draft_of(refund, "SMB-")


def test_the_api_signature_is_base64_hmac_of_the_timestamp() -> None:
    stamp = api_timestamp(datetime(2026, 11, 27, 1, 0, tzinfo=UTC))

    assert stamp == "1795741200000"
    # base64(HMAC-SHA256("sig", "1795741200000")), computed independently with openssl.
    assert api_signature("sig", stamp) == EXPECTED_SIGNATURE


EXPECTED_SIGNATURE = "1LrGSAtp9d9fAPBiqOvlsPMM73srQXTDHKNN4XjfsMk="
