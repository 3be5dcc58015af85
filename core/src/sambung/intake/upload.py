"""`POST /api/v1/integrations/upload-csv` on the admin listener: the seed's CSV upload.

Multipart fields `file`, `source_system` and `outlet`. The file is streamed to a temporary file
(never held in memory), then imported by the same `FileImporter` as the inbox runner. Answers:
200 `{"success", "imported", "errors": [{"row", "error", "data"}], "message"}`; 400 for a
missing field or a file that is not CSV; 404 for an outlet without that connector; 413 over the
connection's `max_file_bytes`; 401 without the admin token (the admin guard); 503 if the store
cannot commit.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from sambung.clock import Clock
from sambung.config import Connection, LoadedConfig
from sambung.connectors import FileDropConnector, FileDropSettings, settings_as
from sambung.errors import StoreUnavailable
from sambung.store import IntakeStore

from .connections import file_drop_connector
from .csvimport import FileImporter, ImportReport

UPLOAD_PATH = "/api/v1/integrations/upload-csv"
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
# Rejected rows listed in the answer; the dead-letter queue holds every one.
ANSWER_ERRORS = 1000
_CHUNK = 1 << 16

log = structlog.get_logger(__name__)


class UploadHost(Protocol):
    """What an upload reads of the running daemon (read at each request: a reload replaces
    `loaded`)."""

    @property
    def loaded(self) -> LoadedConfig: ...
    @property
    def store(self) -> IntakeStore: ...
    @property
    def clock(self) -> Clock: ...


HOST_KEY: web.AppKey[UploadHost] = web.AppKey("upload_host")


def _answer(status: int, message: str, **body: Any) -> web.Response:
    success = body.pop("success", False)
    return web.json_response(
        {
            "success": success,
            "imported": body.pop("imported", 0),
            "errors": [],
            **body,
            "message": message,
        },
        status=status,
    )


def _file_drop_connections(loaded: LoadedConfig) -> list[Connection]:
    return [
        c
        for c in loaded.connections
        if c.settings.enabled and issubclass(c.connector, FileDropConnector)
    ]


def _max_file_bytes(connection: Connection) -> int:
    return settings_as(connection.settings, FileDropSettings).max_file_bytes


async def upload_csv(request: web.Request) -> web.Response:
    """Import one uploaded CSV export for one outlet's connector."""
    host = request.app[HOST_KEY]
    loaded = host.loaded  # once: a reload during the upload does not mix two configs
    connections = _file_drop_connections(loaded)
    limit = max((_max_file_bytes(c) for c in connections), default=0)
    if not connections:
        return _answer(404, "no configured connector reads CSV files")
    if not request.content_type.startswith("multipart/"):
        return _answer(400, "send multipart/form-data with file, source_system and outlet")
    if request.content_length is not None and request.content_length > limit + _CHUNK:
        return _answer(413, f"the upload exceeds {limit} bytes")
    folder = loaded.base_dir / "data" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".upload-{uuid.uuid4().hex}.part"
    try:
        try:
            fields, filename, size = await _receive(request, temp, limit)
        except (HttpProcessingError, ValueError) as err:  # ValueError: text that is not UTF-8
            log.warning("upload.malformed", error=f"{type(err).__name__}: {err}")
            return _answer(400, "the multipart body is malformed")
        if size is None:
            return _answer(413, f"the file exceeds {limit} bytes")
        missing = [n for n in ("file", "source_system", "outlet") if not fields.get(n)]
        if missing:
            return _answer(400, f"missing field: {', '.join(missing)}")
        if not filename.lower().endswith(CSV_SUFFIXES):
            return _answer(400, f"{filename!r} is not a CSV file (.csv, .txt or .tsv)")
        source, outlet = fields["source_system"], fields["outlet"]
        match = [c for c in connections if c.name == source and c.outlet.id == outlet]
        if not match:
            return _answer(404, f"outlet {outlet!r} has no {source!r} connector that reads CSV")
        connection = match[0]
        most = _max_file_bytes(connection)
        if size > most:
            return _answer(413, f"the file exceeds {most} bytes")
        connector = file_drop_connector(connection, host.clock, bound_to="upload")
        importer = FileImporter(host.store, loaded.sinks_for, host.clock)
        try:
            report = await importer.import_path(connector, temp, name=filename, channel="upload")
        except StoreUnavailable as err:
            log.error("upload.store_unavailable", error=str(err))
            return web.json_response(
                {"success": False, "imported": 0, "errors": [], "message": "store unavailable"},
                status=503,
                headers={"Retry-After": "5"},
            )
        return _report_answer(report, connector)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


async def _receive(
    request: web.Request, temp: Path, limit: int
) -> tuple[dict[str, str], str, int | None]:
    """Read the multipart body: text fields into a dict, the file part onto disk.

    Returns the fields, the file's name and its size (None when it went over `limit`).
    """
    fields: dict[str, str] = {}
    filename, size = "", 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            filename = Path(part.filename or "upload.csv").name  # never a path from the client
            fields["file"] = filename
            with temp.open("wb") as handle:
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        return fields, filename, None
                    handle.write(chunk)
        elif part.name:
            fields[part.name] = (await part.text()).strip()
    return fields, filename, size


def _report_answer(
    report: ImportReport, connector: FileDropConnector[FileDropSettings]
) -> web.Response:
    header = report.header
    errors = [
        {
            "row": e.row,
            "error": f"{e.column}: {e.reason}" if e.column else e.reason,
            "data": dict(zip(header, e.values, strict=False)),
        }
        for e in report.errors[:ANSWER_ERRORS]
    ]
    if report.file_error is not None:
        return _answer(400, f"the file cannot be read as CSV: {report.file_error}")
    rejected_whole = report.rejected and report.imported == 0
    if report.duplicate:
        message = "this file was already imported; nothing new"
    elif rejected_whole and connector.settings.on_row_error == "reject_file":
        message = f"{report.rejected} rows rejected: nothing imported (on_row_error: reject_file)"
    elif report.rejected:
        message = f"imported {report.imported} rows; {report.rejected} rejected"
    else:
        message = f"imported {report.imported} rows"
    success = report.duplicate or not (
        report.rejected and connector.settings.on_row_error == "reject_file"
    )
    return web.json_response(
        {
            "success": bool(success),
            "imported": report.imported,
            "errors": errors,
            "message": message,
            "rejected": report.rejected,
            "duplicate": report.duplicate,
        }
    )


def add_upload_route(app: web.Application, host: UploadHost) -> None:
    """Mount the CSV upload on the admin app."""
    app[HOST_KEY] = host
    app.router.add_post(UPLOAD_PATH, upload_csv)
