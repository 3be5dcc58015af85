"""The Moka connector: verifies Moka's signed webhooks and hands the body to `mapping`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field, HttpUrl
from sambung.plugin import (
    CsvStream,
    FileDropConnector,
    FileDropSettings,
    HmacWebhookConnector,
    HmacWebhookSettings,
    Mode,
    OAuthSettings,
    OAuthSpec,
    Page,
    PollConnector,
    PollSettings,
    PollWindow,
    Record,
    RowError,
    Secrets,
    WebhookEvent,
    WebhookRequest,
    configured,
    page_of,
)

from . import csvexport
from .client import MokaClient
from .mapping import payment_to_records, to_event


class MokaSettings(HmacWebhookSettings, PollSettings, FileDropSettings, OAuthSettings):
    """An outlet's `moka` block in the YAML."""

    # Moka does not document its signing: we assume hex HMAC-SHA256 of the body, under a
    # header name the merchant can change without a release.
    signature_header: str = "X-Moka-Signature"
    # Moka's own (numeric) outlet id; when set, events for any other outlet are refused.
    outlet_id: str | None = Field(default=None, coerce_numbers_to_str=True)
    # Poll mode: connect with `sambung connect OUTLET moka` (client_id, client_secret from
    # OAuthSettings); access_token / refresh_token here are only a one-time seed.
    webhook_secret: Secrets | None = None  # type: ignore[assignment]
    base_url: HttpUrl = HttpUrl("https://api.mokapos.com")
    per_page: int = Field(100, ge=1, le=500)
    # How `since`/`until` are sent: epoch seconds (what the SDK types), or the outlet's
    # day as DD/MM/YYYY (what its docstring says); the overlap re-reads the boundary day.
    time_format: Literal["epoch", "dd/mm/yyyy"] = "epoch"

    required_in_mode: ClassVar[dict[Mode, tuple[str, ...]]] = {
        Mode.WEBHOOK: ("webhook_secret",),
        Mode.POLL: ("outlet_id",),
    }


class MokaConnector(
    HmacWebhookConnector[MokaSettings], PollConnector[MokaSettings], FileDropConnector[MokaSettings]
):
    """Receives Moka webhooks: transactions created, updated and refunded; item events."""

    name = "moka"

    # Authorization code grant on Moka's API host (VENDORS.md); no PKCE documented, and the
    # client authenticates with form fields. Moka's scope names are not documented: the YAML's
    # `scopes` sets them.
    oauth = OAuthSpec(
        authorize_url="https://api.mokapos.com/oauth/authorize",
        token_url="https://api.mokapos.com/oauth/token",
        pkce=False,
        client_auth="body",
    )

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """Map a verified body to records."""
        return to_event(request.payload, self.outlet, moka_outlet_id=self.settings.outlet_id)

    def example_body(self, sequence: int) -> bytes:
        """A generated Moka webhook envelope at the outlet's local time now."""
        from . import fake  # only the demo and tests need it

        now = self.context.clock.now().astimezone(self.outlet.timezone)
        return fake.webhook_bytes(sequence, now, self.settings.outlet_id or "41230")

    amount_columns = csvexport.AMOUNT_COLUMNS

    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        """Map every row of a Moka CSV export (file-drop and upload)."""
        return csvexport.parse_file(stream, self.outlet)

    def example_file(self, sequence: int, *, bad_row: bool = False) -> bytes:
        """A generated Moka export at the outlet's local time now."""
        from . import fake  # only the demo and tests need it

        now = self.context.clock.now().astimezone(self.outlet.timezone)
        return fake.export_csv(sequence, now, bad_row=bad_row)

    # -- poll mode -------------------------------------------------------------------------

    @property
    def client(self) -> MokaClient:
        """Moka's reports API through core's HTTP client."""
        settings = self.settings
        return MokaClient(
            self.http,
            str(settings.base_url),
            configured(settings.outlet_id, "outlet_id"),
            credentials=self.credentials,
            per_page=settings.per_page,
            time_format=settings.time_format,
            tz=self.outlet.timezone,
        )

    def oauth_endpoints(self) -> OAuthSpec | None:
        """Moka's OAuth endpoints live on its API host: `oauth_base_url`, else `base_url`."""
        base = self.settings.oauth_base_url or self.settings.base_url
        if self.oauth is None:
            return None
        return self.oauth.at(str(base), self.settings.scopes)

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Pages of payments updated in the window, oldest first; the cursor is `updated_at`."""
        async for rows in self.client.payments(window.since, window.until):
            yield page_of(rows, self._map_payment, self._newest(rows))

    def example_vendor(self) -> Any:
        """The fake Moka (with its OAuth server) for this connection's OAuth app: the simulator
        serves it and connects the connection through it."""
        from . import fake  # only the demo and tests need it

        settings = self.settings
        return fake.MokaFake(
            moka_outlet_id=settings.outlet_id or "41230",
            access_token=None,
            refresh_token=None,
            client_id=settings.client_id or "moka-client",
            client_secret=settings.client_secret.get_secret_value()
            if settings.client_secret
            else "moka-client-secret",
            timezone=str(self.outlet.timezone),
        )

    async def reauthenticate(self) -> None:
        """Forget the cached token; the next request refreshes it."""
        await self.credentials.forget()

    def _map_payment(self, row: Any) -> Any:
        return payment_to_records(row, self.outlet)

    def _newest(self, rows: list[dict[str, Any]]) -> Any:
        from sambung.plugin import InvalidRecord, timestamp

        times = []
        for row in rows:
            try:
                times.append(timestamp(row.get("updated_at"), self.outlet.timezone, "updated_at"))
            except InvalidRecord:
                continue
        return max(times) if times else None
