"""The Xendit connector: invoice callbacks (checked by `x-callback-token`) and a reconciliation
poll of `GET /v2/invoices` that recovers the callbacks that never arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import Field, HttpUrl, SecretStr
from sambung.plugin import (
    Duration,
    Mode,
    Page,
    PollConnector,
    PollSettings,
    PollWindow,
    Secrets,
    WebhookConnector,
    WebhookEvent,
    WebhookRequest,
    configured,
    dumps,
    page_of,
    verify_token,
)

from .client import CALLBACK_HEADER, MAX_LIMIT, XenditClient, xendit_time
from .mapping import dedup_key, to_payment

Status = Literal["PENDING", "PAID", "SETTLED", "EXPIRED"]


class XenditSettings(PollSettings):
    """An outlet's `xendit` block in the YAML."""

    # Webhook mode: the account's callback verification token (a list while rotating).
    callback_token: Secrets | None = None
    callback_header: str = CALLBACK_HEADER
    # Poll mode: the secret API key (HTTP Basic, empty password).
    secret_key: SecretStr | None = None
    base_url: HttpUrl = HttpUrl("https://api.xendit.co")
    # Which invoices the reconciliation reads: those whose callbacks matter.
    statuses: tuple[Status, ...] = Field(("PAID", "SETTLED", "EXPIRED"), min_length=1)
    # Xendit filters by creation time, not by change: each run also reads invoices created
    # this long before the window, so a payment or settlement of an older invoice is seen.
    reconcile_window: Duration = timedelta(days=3)
    per_page: int = Field(MAX_LIMIT, ge=1, le=MAX_LIMIT)

    required_in_mode: ClassVar[dict[Mode, tuple[str, ...]]] = {
        Mode.WEBHOOK: ("callback_token",),
        Mode.POLL: ("secret_key",),
    }


class XenditConnector(WebhookConnector[XenditSettings], PollConnector[XenditSettings]):
    """Xendit invoices as payments: callbacks pushed to us, and a poll that reconciles them."""

    name = "xendit"
    # Xendit does not publish a per-account limit for listing invoices: be polite; its 429s
    # (with Rate-Limit-Reset) are honoured either way.
    rate_limit = 2.0
    max_in_flight = 2

    # -- webhook mode ------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Accept only callbacks carrying the account's token (constant-time comparison)."""
        header = self.settings.callback_header
        verify_token(
            request.headers.get(header),
            configured(self.settings.callback_token, "callback_token"),
            header=header,
        )

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """An invoice callback → its payment; a resend of the same status is a duplicate."""
        invoice = request.payload
        payment = to_payment(invoice, self.outlet)
        return WebhookEvent(
            event_type=f"invoice.{payment.status.value}",
            records=[payment],
            dedup_key=dedup_key(invoice),
        )

    def example_webhook(self, sequence: int) -> WebhookRequest | None:
        """A paid invoice's callback at the outlet's time now; every fifth one expired."""
        from . import fake  # only the demo and tests need it

        token = self.settings.callback_token
        if not token:
            return None
        now = self.context.clock.now()
        row = fake.invoice(sequence, now - timedelta(minutes=3), outlet=self.outlet.id)
        if sequence % 5 == 0:
            row = {**row, "status": "EXPIRED", "updated": xendit_time(now)}
        else:
            row = fake.paid(row, now, channel=sequence)
        headers = CIMultiDict(fake.callback_headers(token[0].get_secret_value()))
        return WebhookRequest(body=dumps(row), headers=CIMultiDictProxy(headers))

    def example_payment(
        self, sequence: int, *, reference: str, amount: Decimal, method: str, paid_at: datetime
    ) -> WebhookRequest | None:
        """A paid invoice's callback for order `reference`, through a channel of `method`."""
        from . import fake  # only the demo and tests need it

        token = self.settings.callback_token
        if not token:
            return None
        row = fake.invoice(sequence, paid_at - timedelta(minutes=2), outlet=self.outlet.id)
        row = {**row, "external_id": reference, "amount": amount}
        row = fake.paid(row, paid_at, channel=fake.channel_for(method))
        headers = CIMultiDict(fake.callback_headers(token[0].get_secret_value()))
        return WebhookRequest(body=dumps(row), headers=CIMultiDictProxy(headers))

    def signed(self, body: bytes) -> WebhookRequest | None:
        """`body` with the callback token header (the token covers no body)."""
        from . import fake  # only the demo and tests need it

        token = self.settings.callback_token
        if not token:
            return None
        headers = CIMultiDict(fake.callback_headers(token[0].get_secret_value()))
        return WebhookRequest(body=body, headers=CIMultiDictProxy(headers))

    # -- poll mode ---------------------------------------------------------------------------

    @property
    def client(self) -> XenditClient:
        """Xendit's invoice list through core's HTTP client."""
        return XenditClient(
            self.http,
            str(self.settings.base_url),
            configured(self.settings.secret_key, "secret_key"),
            limit=self.settings.per_page,
        )

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Every invoice in the configured statuses created since the window's start (less the
        reconcile window); the cursor moves only after the last page, since Xendit lists
        newest first."""
        created_after = window.since - self.settings.reconcile_window
        async for rows in self.client.invoices(created_after, self.settings.statuses):
            yield page_of(rows, self._map, None)
        yield Page(records=(), cursor=window.until)

    def _map(self, row: Any) -> Any:
        return to_payment(row, self.outlet)

    def example_vendor(self) -> Any:
        """The fake Xendit, accepting this connection's secret key (for the simulator)."""
        from . import fake  # only the demo and tests need it

        key = self.settings.secret_key
        return fake.XenditFake(
            secret_key=key.get_secret_value() if key else "",
            outlet=self.outlet.id,
        )
