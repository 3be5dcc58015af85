"""Invoice drafts → Accurate's save.do form, on recorded unified payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sambung.plugin import AuthError, Delivery, DeliveryRejected, RetriableError, draft_of
from sambung.testing.accounting import delivery_of
from sambung_accurate import AccurateSink
from sambung_accurate.client import (
    api_signature,
    api_timestamp,
    api_token_database,
    saved_invoice,
)
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


def test_the_api_timestamp_is_dd_mm_yyyy_hh_mm_ss_on_the_wib_clock() -> None:
    # 18:30 UTC is already the next day in Jakarta (UTC+7).
    assert api_timestamp(datetime(2026, 11, 27, 18, 30, 5, tzinfo=UTC)) == "28/11/2026 01:30:05"


def test_the_api_timestamp_zone_and_form_are_settings() -> None:
    instant = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert api_timestamp(instant, zone=ZoneInfo("Asia/Makassar")) == "27/11/2026 09:00:00"
    assert api_timestamp(instant, "iso8601") == "2026-11-27T08:00:00+07:00"
    settings = AccurateSink.Settings.model_validate(
        {"api_token": "a", "signature_secret": "s", "api_timestamp_format": "iso8601"}
    )
    assert (settings.api_timestamp_format, settings.api_timestamp_zone) == (
        "iso8601",
        "Asia/Jakarta",
    )
    with pytest.raises(ValueError, match="unknown timezone"):
        AccurateSink.Settings.model_validate(
            {"api_token": "a", "signature_secret": "s", "api_timestamp_zone": "Asia/Nowhere"}
        )


def test_the_api_signature_is_base64_hmac_sha256_of_the_timestamp_text() -> None:
    stamp = "27/11/2026 08:00:00"
    expected = base64.b64encode(hmac.new(b"sig", stamp.encode(), hashlib.sha256).digest())

    assert api_signature("sig", stamp) == expected.decode()


def test_api_token_do_names_the_database_host_to_call() -> None:
    answer = json.loads((FIXTURES / "api_token.json").read_text(encoding="utf-8"))

    database = api_token_database(answer)

    assert (database.host, database.id, database.session) == (
        "https://zeus.accurate.id",
        734561,
        None,
    )
    assert database.headers() == {}  # no open-db session in API-token mode


def test_a_bare_host_name_is_called_over_https() -> None:
    answer = {"s": True, "d": {"database": {"id": 7, "host": "zeus.accurate.id/"}}}
    assert api_token_database(answer).host == "https://zeus.accurate.id"


def test_an_api_token_answer_without_a_host_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="no database host"):
        api_token_database({"s": True, "d": {"user": {"id": 1}}})


def test_the_saved_invoice_is_read_from_r_and_d_is_only_messages() -> None:
    answer = json.loads((FIXTURES / "save_answer.json").read_text(encoding="utf-8"))

    saved = saved_invoice(answer, "SMB-20261125-1A2B3C4D")

    assert (saved.id, saved.number) == (4127, "SMB-20261125-1A2B3C4D")
    with pytest.raises(RetriableError, match=r"no r\.id.*berhasil disimpan"):
        saved_invoice({k: v for k, v in answer.items() if k != "r"}, "SMB-1")
