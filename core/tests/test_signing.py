"""Signature helpers: constant-time, rotation-friendly, and strict about their input."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sambung.auth.signing import sign_base64, sign_hex, verify_hmac_sha256, verify_token
from sambung.errors import SignatureError

BODY = b'{"event_type":"transaction.created"}'
OLD, NEW = SecretStr("old-secret"), SecretStr("new-secret")


def test_hex_signature_under_any_configured_secret_passes() -> None:
    verify_hmac_sha256(BODY, sign_hex("old-secret", BODY), [OLD, NEW])
    verify_hmac_sha256(BODY, sign_hex("new-secret", BODY).upper(), [OLD, NEW])


def test_base64_and_prefixed_signatures() -> None:
    verify_hmac_sha256(
        BODY,
        "sha256=" + sign_base64("new-secret", BODY),
        [NEW],
        encoding="base64",
        prefix="sha256=",
    )


@pytest.mark.parametrize(
    ("signature", "reason"),
    [(None, "missing"), ("", "missing"), ("zz", "not hex"), (sign_hex("other", BODY), "match")],
)
def test_bad_signatures_are_refused_with_a_reason(signature: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_hmac_sha256(BODY, signature, [OLD, NEW], header="X-Webhook-Signature")


def test_a_changed_body_fails() -> None:
    with pytest.raises(SignatureError):
        verify_hmac_sha256(BODY + b" ", sign_hex("old-secret", BODY), [OLD])


def test_token_comparison() -> None:
    verify_token("old-secret", [OLD, NEW])
    for given in (None, "", "old-secre", "old-secret!"):
        with pytest.raises(SignatureError):
            verify_token(given, [OLD, NEW])
