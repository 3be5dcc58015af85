"""Fuzzing the CSV upload endpoint through the daemon's real admin app: hostile multipart fields,
file names and contents. An authenticated client is still a sender: never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sambung.connectors import Mode
from sambung.intake.upload import UPLOAD_PATH
from sambung.testing.manual_clock import ManualClock

from ..csvdata import pawoon_export, pawoon_hostile_export
from .harness import ADMIN_TOKEN, OUTLET, REGISTRY, block_for, daemon_app, fuzz
from .test_csv import HOSTILE_CELLS

# Every answer the upload documents (upload.py); 503 only if the store were down, and it is not.
STATUSES = frozenset({200, 400, 404, 413})
MAX_FILE_BYTES = 300_000


@pytest.fixture
async def admin(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TestClient[Any, Any]]:
    """The admin app of a daemon whose outlet imports Pawoon exports."""
    block = block_for(REGISTRY.connectors["pawoon"], Mode.FILE_DROP, max_file_bytes=MAX_FILE_BYTES)
    url = f"sqlite:///{tmp_path / 'sambung.db'}"
    async with daemon_app(tmp_path, clock, {"pawoon": block}, url, admin=True) as (_, client):
        yield client


def multipart(parts: list[tuple[str, bytes | None, bytes]]) -> tuple[bytes, str]:
    """A multipart body of (name, filename or None, content) parts, bytes as given."""
    boundary = uuid.uuid4().hex.encode()
    body = b""
    for name, filename, content in parts:
        disposition = b'Content-Disposition: form-data; name="' + name.encode() + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += b"--" + boundary + b"\r\n" + disposition + b"\r\n\r\n" + content + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary.decode()}"


TEXT = st.one_of(
    st.sampled_from([b"pawoon", OUTLET.encode(), b"", b"moka", b"\xff\xfe", b"kemang\x00"]),
    st.sampled_from(HOSTILE_CELLS).map(lambda cell: cell[:300].encode("utf-8")),
    st.binary(max_size=20),
)


def mostly(value: bytes) -> st.SearchStrategy[bytes]:
    """`value` three times in four, else hostile text: most uploads must reach the import."""
    return st.one_of(st.just(value), st.just(value), st.just(value), TEXT)


NAMES = st.one_of(
    st.just(b"senin.csv"),
    st.just(b"senin.csv"),
    st.sampled_from([b"senin.csv", b"a.txt", b"foto.jpg", b"../../etc/passwd.csv", b"caf\xe9.csv"]),
    st.binary(max_size=20).map(lambda name: name.replace(b'"', b"") + b".csv"),
)
CONTENTS = st.one_of(
    st.integers(0, 40).map(lambda n: pawoon_export(n, start=n * 1000)),
    st.integers(1, 10).map(lambda n: pawoon_hostile_export(n, start=n * 100)),
    st.binary(max_size=300),
)


@fuzz(200)
@given(
    source=mostly(b"pawoon"),
    outlet=mostly(OUTLET.encode()),
    filename=NAMES,
    content=CONTENTS,
    shape=st.sampled_from(["all", "all", "all", "no_file", "file_first", "twice"]),
)
async def test_hostile_uploads_get_a_documented_answer(
    admin: TestClient[Any, Any],
    source: bytes,
    outlet: bytes,
    filename: bytes,
    content: bytes,
    shape: str,
) -> None:
    fields = [("source_system", None, source), ("outlet", None, outlet)]
    file = [("file", filename, content)]
    parts = {
        "all": fields + file,
        "no_file": fields,
        "file_first": file + fields,
        "twice": fields + file + file,
    }[shape]
    body, content_type = multipart(parts)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with admin.post(UPLOAD_PATH, data=body, headers=headers) as answer:
        status = answer.status
        payload = await answer.json(content_type=None)
    assert status in STATUSES, (status, payload)
    assert isinstance(payload.get("message"), str), payload
    if status == 200:
        assert payload["imported"] + payload.get("rejected", 0) >= 0, payload
