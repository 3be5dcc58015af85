"""The `jurnal` sink: sales invoices into Jurnal.id, per transaction or per day."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import Field, HttpUrl, SecretStr
from sambung.plugin import (
    AccountingSinkSettings,
    AuthError,
    Delivery,
    DeliveryRejected,
    DeliveryResult,
    InvoiceDraft,
    RetriableError,
    Sink,
    SinkPaused,
    VendorHttp,
    draft_of,
)

from .client import JurnalClient
from .mapping import encode, invoice_body


class JurnalSettings(AccountingSinkSettings):
    """Mekari HMAC credentials, the API host, and Jurnal's throttle."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    base_url: HttpUrl = HttpUrl("https://api.mekari.com")
    # Jurnal throttles at about 100 calls a minute and says nothing of when to come back.
    rate_per_minute: float = Field(100.0, gt=0, le=6000)
    throttle_seconds: float = Field(60.0, ge=1, le=3600)
    timeout_seconds: float = Field(30.0, gt=0, le=300)

    def check_invoice(self, draft: InvoiceDraft) -> None:
        """Map `draft` as a post would (no call): a dry run finds what a post would refuse."""
        invoice_body(draft, self)


class JurnalSink(Sink[JurnalSettings]):
    """Posts each transaction, or each outlet's daily summary, as a Jurnal sales invoice.

    `custom_id` is the invoice's deterministic number: a redelivery answers 409, which counts as
    delivered. A changed record (a later revision: a late sale changed the day's summary) is
    looked up by its transaction number and PATCHed by Jurnal's numeric id, or created when
    Jurnal has no invoice of that number yet. When Jurnal says the monthly limit is used up,
    the sink pauses until the first of next month (`SinkPaused`) instead of retrying all month;
    rows wait in the outbox meanwhile.
    """

    name = "jurnal"

    async def open(self) -> None:
        """Wire the client to the shared session and this account's rate budget."""
        settings = self.settings
        account = "jurnal:" + hashlib.sha256(settings.client_id.encode()).hexdigest()[:16]
        budget = self.context.budgets.for_account(
            account, settings.rate_per_minute / 60, 4, burst=1
        )
        http = VendorHttp(
            self.context.session,
            budget=budget,
            timeout=settings.timeout_seconds,
            clock=self.context.clock,
        )
        self.client = JurnalClient(
            http,
            base_url=str(settings.base_url),
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            throttle_seconds=settings.throttle_seconds,
        )
        self.paused_until: datetime | None = None

    async def deliver(self, batch: Sequence[Delivery]) -> list[DeliveryResult]:
        """One invoice per item."""
        return [await self.post(item) for item in batch]

    async def post(self, item: Delivery) -> DeliveryResult:
        """Create the invoice; a 409 is delivered already, or for a later revision an update."""
        paused = self.paused_until
        if paused is not None and self.context.clock.now() < paused:
            return SinkPaused("Jurnal's monthly API limit is used up", until=paused)
        try:
            draft = draft_of(item, self.settings.invoice_prefix)
            body = encode(invoice_body(draft, self.settings))
            outcome = await self._save(item, draft.number, body)
        except SinkPaused as err:
            self.paused_until = err.until
            return err
        except (DeliveryRejected, RetriableError, AuthError) as err:
            return err
        self.log.info(
            "jurnal.invoice_posted",
            outlet=item.outlet,
            custom_id=draft.number,
            outcome=outcome,
        )
        return None

    async def _save(self, item: Delivery, number: str, body: bytes) -> str:
        """Create a first revision (a 409 is a redelivery); update a later one in place."""
        if item.revision > 1:
            found = await self.client.find_invoice(number)
            if found is not None:
                await self.client.update_invoice(found, body)
                return "updated"
        if await self.client.create_invoice(body):
            return "created"
        if item.revision > 1:  # its custom_id is taken, yet no invoice has its number
            raise DeliveryRejected(
                f"Jurnal has an invoice with custom_id {number} but none with that transaction"
                " number (renamed in Jurnal?): restore the number there, then replay this entry",
                status=409,
            )
        return "duplicate"

    def vendor_url(self) -> str | None:
        """Mekari's API host."""
        return str(self.settings.base_url)

    def example_vendor(self) -> Any:
        """A fake Jurnal accepting this sink's credentials (`sambung run --simulate`)."""
        from .fake import FakeJurnal

        return FakeJurnal(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret.get_secret_value(),
        )
