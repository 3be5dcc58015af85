"""Credentials the daemon obtains at run time (OAuth tokens), encrypted at rest, refreshed once.

Tokens live in the store as AES-GCM blobs under a key from `SAMBUNG_SECRET_KEY` or a key file
(mode 0600, created on first start). The blob is bound to its outlet and connector (associated
data), so a row copied onto another connection does not decrypt.

Connectors see one small object, `context.credentials` (`ConnectionCredentials`):

    token = await context.credentials.token()            # fresh, refreshed when due
    ... vendor answers 401 ...
    await context.credentials.invalidate(token)          # the next token() refreshes, once

or, simpler, `sambung.http.with_token(http, creds.key, creds.fetch, ...)`, which does both.
However many callers ask at once, one refresh runs (`TokenCache`); a rotated refresh token is
stored before the new access token is handed out; `invalid_grant` raises `AuthError` (the poll
loop marks the connection `needs_reauth`); a 5xx raises `RetriableError` (retried later).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, SecretStr
from structlog.typing import FilteringBoundLogger

from sambung import redaction
from sambung.auth.oauth import (
    OAuthClientSettings,
)
from sambung.clock import Clock, SystemClock
from sambung.connectors import ConnectorSettings, OAuthSettings
from sambung.errors import (
    AuthError,
    ConfigError,
    CredentialsUnreadable,
    InvalidGrant,
    StoreUnavailable,
)
from sambung.store import CredentialStore, StoredCredential

from .oauth import SINK_OUTLET, OAuthSpec, TokenEndpoint
from .tokens import Token, TokenCache

if TYPE_CHECKING:
    from sambung.config import LoadedConfig
    from sambung.connectors import Connector
    from sambung.http import VendorHttp

log = structlog.get_logger(__name__)

KEY_ENV = "SAMBUNG_SECRET_KEY"
KEY_FILE = "secret.key"
KIND_OAUTH2 = "oauth2"


# -- the key ------------------------------------------------------------------------------------


def key_file_of(loaded: LoadedConfig) -> Path:
    """Where the key file is: `credentials.key_file`, else beside the SQLite file, else
    `<YAML folder>/data/secret.key`."""
    configured = loaded.config.credentials.key_file
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else loaded.base_dir / path
    url = loaded.config.store.url
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        return (db if db.is_absolute() else loaded.base_dir / db).parent / KEY_FILE
    return loaded.base_dir / "data" / KEY_FILE


def decode_key(text: str, where: str) -> bytes:
    """A 32-byte key from its URL-safe base64 text (padding optional)."""
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(
            f"{where}: not a sambung secret key (expected 32 bytes in URL-safe base64, such as"
            " the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return key


def load_key(key_file: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The credential key: `SAMBUNG_SECRET_KEY`, else the key file, created (0600) if missing.

    A key file that group or others may read is refused: whoever reads it reads every token.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(KEY_ENV)
    if text:
        redaction.secrets.learn(text.strip())  # as written, whatever its padding or alphabet
        return decode_key(text, KEY_ENV)
    try:
        mode = key_file.stat().st_mode
    except FileNotFoundError:
        return _create_key_file(key_file)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"credentials.key_file: {key_file} has mode {stat.S_IMODE(mode):04o}; it must be"
            f" readable by its owner only (chmod 600 {key_file})"
        )
    return decode_key(key_file.read_text(encoding="ascii"), f"credentials.key_file ({key_file})")


def _create_key_file(key_file: Path) -> bytes:
    key = secrets.token_bytes(32)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once must not write two different keys.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(key_file, {})
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.urlsafe_b64encode(key).decode("ascii") + "\n")
    log.info("credentials.key_created", key_file=str(key_file))
    return key


class SecretBox:
    """AES-256-GCM: seal a secret to bytes bound to a context, open it again."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        # The key as it is written (SAMBUNG_SECRET_KEY, the key file): masked if ever quoted.
        redaction.secrets.learn(base64.urlsafe_b64encode(key).decode("ascii").rstrip("="))

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box with a random key: for tests, where nothing must survive the process."""
        return cls(AESGCM.generate_key(bit_length=256))

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Nonce + ciphertext + tag; `context` must be given again to open it."""
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, blob: bytes, context: str) -> bytes:
        """The plaintext; `CredentialsUnreadable` if the key or the context differ."""
        try:
            return self._aead.decrypt(blob[:12], blob[12:], context.encode())
        except (InvalidTag, ValueError) as err:
            raise CredentialsUnreadable(
                "stored credentials do not decrypt with this key (was SAMBUNG_SECRET_KEY or the"
                " key file changed?); connect again with `sambung connect`"
            ) from err


# -- stored tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTokens:
    """A connection's decrypted tokens and, when they came from the YAML, the seed's digest."""

    token: Token
    updated_at: datetime
    seed: str | None = None


def _digest(*values: SecretStr | None) -> str:
    joined = "\0".join(v.get_secret_value() if v else "" for v in values)
    return hashlib.sha256(joined.encode()).hexdigest()[:24]


class CredentialService:
    """The daemon's credentials: encrypted in the store, cached and refreshed once per key."""

    def __init__(
        self,
        store: CredentialStore,
        box: SecretBox,
        *,
        clock: Clock | None = None,
        tokens: TokenCache | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.clock = clock or SystemClock()
        self.tokens = tokens or TokenCache(self.clock)
        # Named in every "reconnect with …" hint, so the command can be pasted as it is.
        self._connect = f"sambung connect -c {config_path}" if config_path else "sambung connect"
        # Refresh tokens the vendor refused (digest by cache key): never sent again.
        self._refused: dict[str, str] = {}

    @staticmethod
    def key(outlet: str, connector: str) -> str:
        """The token cache key of one connection's stored credential."""
        return f"credentials:{outlet}:{connector}"

    async def load(self, outlet: str, connector: str) -> StoredTokens | None:
        """The decrypted tokens of one connection, if stored."""
        stored = await self.store.get_credential(outlet, connector)
        if stored is None:
            return None
        data = json.loads(self.box.open(stored.secret, f"{outlet}/{connector}"))
        expires = data.get("expires_at")
        refresh = data.get("refresh_token")
        token = Token(
            SecretStr(data["access_token"]),
            datetime.fromisoformat(expires) if expires else None,
            SecretStr(refresh) if refresh else None,
        )
        remember_secrets(token)
        return StoredTokens(token, stored.updated_at, data.get("seed"))

    async def save(
        self, outlet: str, connector: str, token: Token, *, seed: str | None = None
    ) -> None:
        """Encrypt and store one connection's tokens (durable when this returns)."""
        remember_secrets(token)
        data = {
            "access_token": token.access_token.get_secret_value(),
            "refresh_token": token.refresh_token.get_secret_value()
            if token.refresh_token
            else None,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "seed": seed,
        }
        blob = self.box.seal(json.dumps(data).encode(), f"{outlet}/{connector}")
        await self.store.save_credential(
            StoredCredential(
                outlet, connector, KIND_OAUTH2, blob, token.expires_at, self.clock.now()
            )
        )

    async def connected(self, outlet: str, connector: str, token: Token) -> None:
        """Store tokens from a finished connect flow; the next request uses them."""
        await self.save(outlet, connector, token)
        key = self.key(outlet, connector)
        self._refused.pop(key, None)
        self.tokens.forget(key)

    def for_connector(
        self, connector: Connector[ConnectorSettings], http: VendorHttp
    ) -> ConnectionCredentials:
        """The credentials object handed to one connector instance (`context.credentials`)."""
        outlet, name = connector.outlet.id, connector.name
        return ConnectionCredentials(
            self,
            outlet=outlet,
            name=name,
            settings=connector.settings,
            spec=connector.oauth_endpoints(),
            http=http,
            log=connector.log,
            reconnect=f"{self._connect} {outlet} {name}",
        )

    def for_sink(
        self,
        name: str,
        settings: OAuthClientSettings,
        spec: OAuthSpec | None,
        http: VendorHttp,
        log: FilteringBoundLogger,
    ) -> ConnectionCredentials:
        """The credentials of sink `name`, stored under the outlet `SINK_OUTLET` ("*")."""
        return ConnectionCredentials(
            self,
            outlet=SINK_OUTLET,
            name=name,
            settings=settings,
            spec=spec,
            http=http,
            log=log,
            reconnect=f"{self._connect} --sink {name}",
        )

    def refused(self, key: str, refresh: SecretStr) -> bool:
        """Whether this refresh token was refused before."""
        return self._refused.get(key) == _digest(refresh)

    def refuse(self, key: str, refresh: SecretStr) -> None:
        """Remember that the vendor refused this refresh token."""
        self._refused[key] = _digest(refresh)


class ConnectionCredentials:
    """One connection's tokens, as a connector uses them (`context.credentials`).

    `await token()` gives a fresh access token; `await invalidate(token)` after the vendor
    refused it (401) makes the next `token()` refresh. `key` and `fetch` plug into
    `sambung.http.with_token`, which does both around one request.
    """

    def __init__(
        self,
        service: CredentialService,
        *,
        outlet: str,
        name: str,
        settings: BaseModel,
        spec: OAuthSpec | None,
        http: VendorHttp,
        log: FilteringBoundLogger,
        reconnect: str,
    ) -> None:
        self.service = service
        self.outlet = outlet
        self.connector = name
        self.settings = settings
        self.spec = spec
        self.http = http
        self.log = log
        # The command that connects this connection (or sink) again, for messages and logs.
        self.reconnect = reconnect
        self.key = service.key(self.outlet, self.connector)

    async def token(self) -> Token:
        """A fresh access token: cached, else stored, else refreshed (once for all callers)."""
        return await self.service.tokens.get(self.key, self.fetch)

    async def invalidate(self, failed_token: Token) -> None:
        """The vendor refused `failed_token`: the next `token()` refreshes (only if it is still
        the current one, so fifty callers invalidating the same token cause one refresh)."""
        self.service.tokens.invalidate(self.key, failed_token)

    async def forget(self) -> None:
        """Drop the cached token, whichever it is (before a retry after an `AuthError`)."""
        self.service.tokens.invalidate(self.key)

    async def updated_at(self) -> datetime | None:
        """When this connection's stored credential last changed, if there is one."""
        stored = await self.service.store.get_credential(self.outlet, self.connector)
        return stored.updated_at if stored is not None else None

    async def fetch(self, previous: Token | None) -> Token:
        """The `TokenCache` fetch: the stored token if it is fresh and not the one refused,
        else a refresh, stored before it is returned."""
        stored = await self._stored_or_seed()
        if stored is None:
            raise AuthError(f"{self.connector} is not connected: run `{self.reconnect}`")
        token = stored.token
        now = self.service.clock.now()
        same = previous is not None and (
            previous.access_token.get_secret_value() == token.access_token.get_secret_value()
        )
        if token.fresh(now) and not same:
            return token
        # Replicas sharing a store refresh one at a time: whoever comes second uses what the
        # first stored, rather than spending (and, with rotation, killing) the refresh token.
        async with self.service.store.exclusive(f"credentials:{self.outlet}/{self.connector}"):
            latest = await self.service.load(self.outlet, self.connector)
            if latest is not None and _secret(latest.token) != _secret(token):
                if latest.token.fresh(self.service.clock.now()):
                    return latest.token
                token = latest.token
            return await self._refresh(token, stored.seed)

    async def _stored_or_seed(self) -> StoredTokens | None:
        stored = await self.service.load(self.outlet, self.connector)
        # Only a connector's settings carry a seed (`OAuthSettings`); a sink's never do.
        access = self.settings.access_token if isinstance(self.settings, OAuthSettings) else None
        if access is None or not isinstance(self.settings, OAuthSettings):
            return stored
        refresh = self.settings.refresh_token
        seed = _digest(access, refresh)
        # A seed is stored once; a changed seed replaces tokens that came from a seed, never
        # tokens from a connect flow.
        if stored is None or (stored.seed is not None and stored.seed != seed):
            token = Token(access, None, refresh)
            await self.service.save(self.outlet, self.connector, token, seed=seed)
            self.log.info("credentials.seeded_from_config")
            return StoredTokens(token, self.service.clock.now(), seed)
        return stored

    async def _refresh(self, token: Token, seed: str | None) -> Token:
        refresh = token.refresh_token
        if refresh is None:
            raise AuthError("the access token was refused and there is no refresh token")
        if self.service.refused(self.key, refresh):
            raise InvalidGrant(
                f"the refresh token was refused (invalid_grant): run `{self.reconnect}`"
            )
        client = self.settings
        if self.spec is None or not isinstance(client, OAuthClientSettings) or not client.client_id:
            raise AuthError("cannot refresh: no OAuth client_id configured")
        endpoint = TokenEndpoint(self.http, self.spec, client.client_id, client.client_secret)
        try:
            fresh = await endpoint.refresh(refresh)
        except InvalidGrant:
            self.service.refuse(self.key, refresh)
            self.log.warning("credentials.refresh_refused", hint=f"run `{self.reconnect}`")
            raise
        if fresh.refresh_token is None:  # not rotated: the old one stays valid
            fresh = Token(fresh.access_token, fresh.expires_at, refresh)
        try:
            # Stored before use: if we crashed after the vendor rotated the refresh token but
            # before storing it, the old one would be dead and the new one lost.
            await self.service.save(self.outlet, self.connector, fresh, seed=seed)
        except StoreUnavailable:
            self.log.error("credentials.refreshed_not_stored", hint="connect again if it persists")
            raise
        self.log.info(
            "credentials.refreshed",
            expires_at=fresh.expires_at.isoformat() if fresh.expires_at else None,
            rotated=fresh.refresh_token is not refresh,
        )
        return fresh


def _secret(token: Token) -> str:
    return token.access_token.get_secret_value()


def remember_secrets(token: Token) -> None:
    """Register a token's values for redaction, so an echo of them is masked wherever it goes."""
    redaction.secrets.learn(*token.values())
