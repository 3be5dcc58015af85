"""Pure mapping: an invoice draft → the form fields of Accurate's `sales-invoice/save.do`."""

from __future__ import annotations

from decimal import Decimal

from sambung.plugin import AccountingSinkSettings, InvoiceDraft


def number_text(value: Decimal) -> str:
    """An amount as Accurate reads it: plain digits, a dot for decimals, no exponent."""
    return format(value, "f")


def invoice_form(
    draft: InvoiceDraft,
    settings: AccountingSinkSettings,
    *,
    branch: str | None = None,
    invoice_id: int | None = None,
) -> list[tuple[str, str]]:
    """The form of one sales invoice; with `invoice_id` it updates that invoice.

    Product lines carry their own discount (`itemCashDiscount`); service charge, tax and rounding
    are lines of their mapped items; a transaction-level discount is the invoice's `cashDiscount`.
    """
    form: list[tuple[str, str]] = []
    if invoice_id is not None:
        form.append(("id", str(invoice_id)))
    form += [
        ("customerNo", settings.customer_code(draft.outlet)),
        ("transDate", f"{draft.business_date:%d/%m/%Y}"),
        ("number", draft.number),
        ("description", draft.description),
    ]
    if branch:
        form.append(("branchName", branch))
    index = 0
    for line in draft.lines:
        prefix = f"detailItem[{index}]"
        form += [
            (f"{prefix}.itemNo", settings.item_code(line.sku, line.name)),
            (f"{prefix}.detailName", line.name),
            (f"{prefix}.unitPrice", number_text(line.unit_price)),
            (f"{prefix}.quantity", number_text(line.quantity)),
        ]
        if line.discount:
            form.append((f"{prefix}.itemCashDiscount", number_text(line.discount)))
        index += 1
    for charge, amount in draft.charges():
        if charge == "discount":
            form.append(("cashDiscount", number_text(-amount)))
            continue
        prefix = f"detailItem[{index}]"
        form += [
            (f"{prefix}.itemNo", settings.charge_code(charge)),
            (f"{prefix}.unitPrice", number_text(amount)),
            (f"{prefix}.quantity", "1"),
        ]
        index += 1
    return form
