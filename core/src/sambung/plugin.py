"""Everything a sambung plugin may use, in one place: import from here and nowhere else in core.

A plugin (ours or a third party's) is a distribution with an entry point in the `sambung` group
whose module implements hooks with `hookimpl`, registering connector and sink classes. Those
classes subclass the bases here, declare a pydantic `Settings` model for their YAML block, and
write only the vendor-specific parts; core runs every loop around them:

```python
from sambung.plugin import (
    Page, PollConnector, PollSettings, PollWindow, RegisterConnector, hookimpl, page_of,
)

class QasirSettings(PollSettings):          # the YAML block; also the connector's `Settings`
    api_key: SecretStr

class QasirConnector(PollConnector[QasirSettings]):
    name = "qasir"

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        async for rows in self.client.transactions(window.since):   # decode + paginate
            yield page_of(rows, self._map, cursor=None)

@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    register(QasirConnector)
```

Its tests subclass the conformance suite for its mode (`sambung.testing.conformance`).

What is here is the supported surface: names are kept stable across core's internal moves
(they are re-exported from wherever they live). Test helpers are in `sambung.testing`. Anything
else in `sambung.*` is core's own and may change without notice.
"""

from __future__ import annotations

from .alerts.channel import (
    AlertMessage,
    ChannelContext,
    ChannelSettings,
    NotifierChannel,
    RegisterChannel,
)
from .auth.oauth import (
    OAuthClientSettings,
    OAuthSpec,
)
from .auth.signing import sign_base64, sign_hex, verify_hmac_sha256, verify_token
from .auth.tokens import Token
from .clock import Clock, SystemClock
from .connectors import (
    Connector,
    ConnectorContext,
    ConnectorSettings,
    Credentials,
    Duration,
    FileDropConnector,
    FileDropSettings,
    HmacWebhookConnector,
    HmacWebhookSettings,
    Mode,
    OAuthSettings,
    Page,
    PollConnector,
    PollSettings,
    PollWindow,
    RegisterConnector,
    Rejected,
    Secrets,
    WebhookConnector,
    WebhookEvent,
    WebhookRequest,
    configured,
    page_of,
)
from .delivery.accounting import AccountingSinkSettings, InvoiceDraft, InvoiceLine, draft_of
from .delivery.sinks import (
    Delivery,
    DeliveryResult,
    RegisterSink,
    Sink,
    SinkContext,
    SinkCredentials,
    SinkSettings,
)
from .errors import (
    AuthError,
    ConfigError,
    DeliveryRejected,
    InvalidPayload,
    InvalidRecord,
    RequestRejected,
    RetriableError,
    SambungError,
    SignatureError,
    SinkDisconnected,
    SinkGone,
    SinkPaused,
)
from .hookspecs import hookimpl
from .http import VendorHttp, VendorResponse, vendor_message, with_token
from .intake.csvfiles import CsvStream, NumberStyle, Row, RowError, map_rows, open_csv
from .intake.known import MAX_DAYS as MAX_KNOWN_DAYS
from .intake.known import KnownRecord, KnownRecords
from .models import (
    DailySummary,
    InventoryLevel,
    LineItem,
    Outlet,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Reconciliation,
    Record,
    Transaction,
    TransactionType,
)
from .paging import (
    KeysetPaginator,
    NextUrlPaginator,
    PageNumberPaginator,
    Paginator,
    PagingStuck,
    UnreadableAnswer,
    decode,
    paginate,
)
from .parse import (
    amount,
    business_date,
    dumps,
    each,
    get,
    loads,
    mapping,
    money,
    optional_money,
    optional_text,
    optional_timestamp,
    quantity,
    require,
    text,
    timestamp,
)
from .redaction import shorten
from .store import DeadLetter

__all__ = [
    "MAX_KNOWN_DAYS",
    "AccountingSinkSettings",
    "AlertMessage",
    "AuthError",
    "ChannelContext",
    "ChannelSettings",
    "Clock",
    "ConfigError",
    "Connector",
    "ConnectorContext",
    "ConnectorSettings",
    "Credentials",
    "CsvStream",
    "DailySummary",
    "DeadLetter",
    "Delivery",
    "DeliveryRejected",
    "DeliveryResult",
    "Duration",
    "FileDropConnector",
    "FileDropSettings",
    "HmacWebhookConnector",
    "HmacWebhookSettings",
    "InvalidPayload",
    "InvalidRecord",
    "InventoryLevel",
    "InvoiceDraft",
    "InvoiceLine",
    "KeysetPaginator",
    "KnownRecord",
    "KnownRecords",
    "LineItem",
    "Mode",
    "NextUrlPaginator",
    "NotifierChannel",
    "NumberStyle",
    "OAuthClientSettings",
    "OAuthSettings",
    "OAuthSpec",
    "Outlet",
    "Page",
    "PageNumberPaginator",
    "Paginator",
    "PagingStuck",
    "Payment",
    "PaymentMethod",
    "PaymentStatus",
    "PollConnector",
    "PollSettings",
    "PollWindow",
    "Reconciliation",
    "Record",
    "RegisterChannel",
    "RegisterConnector",
    "RegisterSink",
    "Rejected",
    "RequestRejected",
    "RetriableError",
    "Row",
    "RowError",
    "SambungError",
    "Secrets",
    "SignatureError",
    "Sink",
    "SinkContext",
    "SinkCredentials",
    "SinkDisconnected",
    "SinkGone",
    "SinkPaused",
    "SinkSettings",
    "SystemClock",
    "Token",
    "Transaction",
    "TransactionType",
    "UnreadableAnswer",
    "VendorHttp",
    "VendorResponse",
    "WebhookConnector",
    "WebhookEvent",
    "WebhookRequest",
    "amount",
    "business_date",
    "configured",
    "decode",
    "draft_of",
    "dumps",
    "each",
    "get",
    "hookimpl",
    "loads",
    "map_rows",
    "mapping",
    "money",
    "open_csv",
    "optional_money",
    "optional_text",
    "optional_timestamp",
    "page_of",
    "paginate",
    "quantity",
    "require",
    "shorten",
    "sign_base64",
    "sign_hex",
    "text",
    "timestamp",
    "vendor_message",
    "verify_hmac_sha256",
    "verify_token",
    "with_token",
]
