"""Constant-time checks of webhook signatures and shared tokens, with rotation-friendly secrets."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

from pydantic import SecretStr

from sambung.errors import SignatureError

Encoding = Literal["hex", "base64"]


def hmac_sha256(secret: str | bytes, message: bytes) -> bytes:
    """The raw HMAC-SHA256 digest of `message` under `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).digest()


def sign_hex(secret: str | bytes, message: bytes) -> str:
    """HMAC-SHA256 as lowercase hex, as most POS vendors send it."""
    return hmac_sha256(secret, message).hex()


def sign_base64(secret: str | bytes, message: bytes) -> str:
    """HMAC-SHA256 as standard base64."""
    return base64.b64encode(hmac_sha256(secret, message)).decode()


def verify_hmac_sha256(
    message: bytes,
    signature: str | None,
    secrets: Iterable[SecretStr],
    *,
    encoding: Encoding = "hex",
    prefix: str = "",
    header: str = "signature",
) -> None:
    """Accept `signature` if it is the HMAC of `message` under any of `secrets`; else raise.

    Every secret is tried (rotation: old and new are both valid for a while) and every
    comparison is constant-time, so timing reveals neither the signature nor which secret matched.
    """
    if not signature:
        raise SignatureError(f"missing {header}")
    candidate = signature.strip()
    if prefix:
        if not candidate.startswith(prefix):
            raise SignatureError(f"{header} does not start with {prefix!r}")
        candidate = candidate[len(prefix) :]
    try:
        given = (
            bytes.fromhex(candidate)
            if encoding == "hex"
            else base64.b64decode(candidate, validate=True)
        )
    except (ValueError, binascii.Error):
        raise SignatureError(f"{header} is not {encoding}") from None
    matched = False
    for secret in secrets:
        expected = hmac_sha256(secret.get_secret_value(), message)
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError(f"{header} does not match")


def verify_token(given: str | None, secrets: Iterable[SecretStr], *, header: str = "token") -> None:
    """Accept a shared token (Xendit's `x-callback-token`) compared in constant time."""
    if not given:
        raise SignatureError(f"missing {header}")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret.get_secret_value().encode(), given.encode())
    if not matched:
        raise SignatureError(f"{header} does not match")
