"""The `accurate` sink: sales invoices into Accurate Online, per transaction or per day."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pydantic import Field, HttpUrl, SecretStr
from sambung.accounting import AccountingSinkSettings, draft_of
from sambung.errors import AuthError, DeliveryRejected, RequestRejected, RetriableError
from sambung.http import VendorHttp
from sambung.sinks import Delivery, DeliveryResult, Sink

from .client import AccurateClient, ApiTokenAuth
from .mapping import invoice_form


class AccurateSink(Sink):
    """Posts each transaction, or each outlet's daily summary, as an Accurate sales invoice.

    The invoice number is derived from the record, so a redelivery or a changed summary finds
    the invoice by number and saves over it (with its `id`) instead of adding another.
    """

    name = "accurate"

    class Settings(AccountingSinkSettings):
        """API-token credentials, the database, branches, and Accurate's rate budget."""

        api_token: SecretStr
        signature_secret: SecretStr
        account_url: HttpUrl = HttpUrl("https://account.accurate.id")
        # Which database (company) to post to; needed when the account has more than one.
        database_id: int | None = None
        # Outlet id → Accurate branch name (`branchName`); unmapped outlets post without one.
        branches: dict[str, str] = Field(default_factory=dict)
        # Accurate allows 8 calls per second and 8 in flight per account.
        rate_limit: float = Field(8.0, gt=0, le=8.0)
        max_in_flight: int = Field(8, ge=1, le=8)
        timeout_seconds: float = Field(30.0, gt=0, le=300)

    async def open(self) -> None:
        """Wire the client to the shared session and this account's rate budget."""
        settings = self.settings
        token = settings.api_token.get_secret_value()
        account = "accurate:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        # Burst 1: calls evenly spaced, since Accurate counts them per calendar second.
        budget = self.context.budgets.for_account(
            account, settings.rate_limit, settings.max_in_flight, burst=1
        )
        http = VendorHttp(
            self.context.session,
            budget=budget,
            timeout=settings.timeout_seconds,
            clock=self.context.clock,
        )
        auth = ApiTokenAuth(settings.api_token, settings.signature_secret, self.context.clock)
        self.client = AccurateClient(
            http,
            auth,
            account_url=str(settings.account_url),
            database_id=settings.database_id,
        )

    async def deliver(self, batch: Sequence[Delivery]) -> list[DeliveryResult]:
        """One invoice per item."""
        return [await self.post(item) for item in batch]

    async def post(self, item: Delivery) -> DeliveryResult:
        """Save one invoice, over the existing one with the same number if there is one."""
        try:
            draft = draft_of(item, self.settings.invoice_prefix)
            branch = self.settings.branches.get(item.outlet)
            invoice_form(draft, self.settings, branch=branch)  # mapping problems before any call
            existing = await self.client.find_invoice(draft.number)
            form = invoice_form(draft, self.settings, branch=branch, invoice_id=existing)
            invoice_id = await self.client.save_invoice(draft.number, form)
        except (DeliveryRejected, RetriableError, AuthError) as err:
            return err
        except RequestRejected as err:
            return DeliveryRejected(str(err), status=err.status)
        self.log.info(
            "accurate.invoice_saved",
            outlet=item.outlet,
            number=draft.number,
            invoice_id=invoice_id,
            updated=existing is not None,
        )
        return None

    def vendor_url(self) -> str | None:
        """Accurate's account host (the database host comes from open-db)."""
        return str(self.settings.account_url)

    def example_vendor(self) -> Any:
        """A fake Accurate accepting this sink's credentials (`sambung run --simulate`)."""
        from .fake import FakeAccurate

        return FakeAccurate(
            api_token=self.settings.api_token.get_secret_value(),
            signature_secret=self.settings.signature_secret.get_secret_value(),
        )
