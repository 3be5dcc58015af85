"""The `accurate` sink: sales invoices into Accurate Online, per transaction or per day."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator
from sambung.plugin import (
    AccountingSinkSettings,
    AuthError,
    ConfigError,
    Delivery,
    DeliveryRejected,
    DeliveryResult,
    InvoiceDraft,
    OAuthClientSettings,
    OAuthSpec,
    RequestRejected,
    RetriableError,
    Sink,
    SinkPaused,
    VendorHttp,
    configured,
    draft_of,
)

from .client import AccurateAuth, AccurateClient, ApiTokenAuth, OAuthAuth, TimestampFormat
from .mapping import invoice_form

# Accurate Online's OAuth 2.0 (VENDORS.md): the token call authenticates the client with HTTP
# Basic; no PKCE. The default scopes are what posting and finding invoices needs.
ACCURATE_OAUTH = OAuthSpec(
    authorize_url="https://account.accurate.id/oauth/authorize",
    token_url="https://account.accurate.id/oauth/token",
    scopes=("sales_invoice_save", "sales_invoice_view"),
    client_auth="basic",
)


class AccurateSettings(AccountingSinkSettings, OAuthClientSettings):
    """Credentials (API token, or OAuth), the database, branches, and the rate budget."""

    # `api_token`: a signed `aat…` token from the YAML. `oauth`: tokens from
    # `sambung connect --sink NAME`, stored encrypted; needs client_id and client_secret.
    auth: Literal["api_token", "oauth"] = "api_token"
    api_token: SecretStr | None = None
    signature_secret: SecretStr | None = None
    # `X-Api-Timestamp` as the working integrations send it: `dd/MM/yyyy HH:mm:ss` on the
    # clock of `api_timestamp_zone` (WIB), or `iso8601` with its offset.
    api_timestamp_format: TimestampFormat = "dd/MM/yyyy HH:mm:ss"
    api_timestamp_zone: str = "Asia/Jakarta"
    account_url: HttpUrl = HttpUrl("https://account.accurate.id")
    # Which database (company) to post to: with OAuth, needed when the account has more
    # than one; an API token belongs to one database, which this must then match.
    database_id: int | None = None
    # Outlet id → Accurate branch name (`branchName`); unmapped outlets post without one.
    branches: dict[str, str] = Field(default_factory=dict)
    # Accurate allows 8 calls per second and 8 in flight per account.
    rate_limit: float = Field(8.0, gt=0, le=8.0)
    max_in_flight: int = Field(8, ge=1, le=8)
    timeout_seconds: float = Field(30.0, gt=0, le=300)

    @field_validator("api_timestamp_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (such as Asia/Jakarta)") from None
        return value

    @model_validator(mode="after")
    def _credentials_of_the_mode(self) -> Self:
        if self.auth == "api_token" and (self.api_token is None or not self.signature_secret):
            raise ValueError("auth: api_token needs api_token and signature_secret")
        if self.auth == "oauth" and (not self.client_id or self.client_secret is None):
            raise ValueError("auth: oauth needs client_id and client_secret (the OAuth app's)")
        return self

    def check_invoice(self, draft: InvoiceDraft) -> None:
        """Map `draft` as a post would (no call): a dry run finds what a post would refuse."""
        invoice_form(draft, self, branch=self.branches.get(draft.outlet))

    def oauth_endpoints(self) -> OAuthSpec | None:
        """Accurate's OAuth endpoints in OAuth mode (moved to `oauth_base_url` when set)."""
        if self.auth != "oauth":
            return None
        base = str(self.oauth_base_url) if self.oauth_base_url else None
        return ACCURATE_OAUTH.at(base, self.scopes)


class AccurateSink(Sink[AccurateSettings]):
    """Posts each transaction, or each outlet's daily summary, as an Accurate sales invoice.

    The invoice number is derived from the record, so a redelivery or a changed summary finds
    the invoice by number and saves over it (with its `id`) instead of adding another.
    """

    name = "accurate"

    async def open(self) -> None:
        """Wire the client to the shared session and this account's rate budget."""
        settings = self.settings
        who = settings.client_id if settings.auth == "oauth" else settings.api_token
        who = who.get_secret_value() if isinstance(who, SecretStr) else str(who)
        account = "accurate:" + hashlib.sha256(who.encode()).hexdigest()[:16]
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
        auth: AccurateAuth
        if settings.auth == "oauth":
            if self.context.credentials is None:  # a SinkContext built outside the dispatcher
                raise ConfigError(f"sink {self.context.name}: auth: oauth needs stored credentials")
            credentials = self.context.credentials.for_sink(
                self.context.name, settings, settings.oauth_endpoints(), http, self.log
            )
            auth = OAuthAuth(credentials, self.context.clock)
        else:
            auth = ApiTokenAuth(
                configured(settings.api_token, "api_token"),
                configured(settings.signature_secret, "signature_secret"),
                self.context.clock,
                style=settings.api_timestamp_format,
                zone=ZoneInfo(settings.api_timestamp_zone),
            )
        self.client = AccurateClient(
            http,
            auth,
            account_url=str(settings.account_url),
            database_id=settings.database_id,
            api_token=settings.auth == "api_token",
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
            saved = await self.client.save_invoice(draft.number, form)
        except (DeliveryRejected, RetriableError, AuthError, SinkPaused) as err:
            return err
        except RequestRejected as err:
            return DeliveryRejected(str(err), status=err.status)
        self.log.info(
            "accurate.invoice_saved",
            outlet=item.outlet,
            number=saved.number,
            invoice_id=saved.id,
            updated=existing is not None,
        )
        return None

    def vendor_url(self) -> str | None:
        """Accurate's account host (the database host comes from api-token.do or open-db)."""
        return str(self.settings.account_url)

    def example_vendor(self) -> Any:
        """A fake Accurate accepting this sink's credentials (`sambung run --simulate`)."""
        from .fake import FakeAccurate

        settings = self.settings
        if settings.auth == "oauth":
            secret = settings.client_secret
            return FakeAccurate(
                client_id=configured(settings.client_id, "client_id"),
                client_secret=secret.get_secret_value() if secret else "",
            )
        return FakeAccurate(
            api_token=configured(settings.api_token, "api_token").get_secret_value(),
            signature_secret=configured(
                settings.signature_secret, "signature_secret"
            ).get_secret_value(),
        )
