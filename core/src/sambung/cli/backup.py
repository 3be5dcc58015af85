"""`sambung backup` and `sambung restore`: the SQLite store and the credentials key in one file.

The archive is a gzip-compressed tar: `tar tzf` lists it on any server without sambung, it
keeps one stream (no central directory to seek back to, unlike zip), and gzip shrinks a SQLite
file several times over. Its members:

    manifest.json   format version, sambung version, when, schema version, sha256 of each
                    member, and the outlets and connectors of the config it came from
    sambung.db      a consistent online snapshot of the store (SQLite's backup API)
    secret.key      the key that decrypts the stored credentials, if it is in a key file

It holds the key, so it is written with mode 0600. A restore checks everything before it touches
the store, refuses while any process has the store open, and puts an existing store aside
(`--force`) rather than overwrite it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from sambung import __version__
from sambung.clock import Clock, SystemClock
from sambung.config import LoadedConfig
from sambung.errors import BackupRefused, ConfigError, StoreInUse
from sambung.store import open_store
from sambung.store.snapshot import (
    COMPANIONS,
    check_database,
    newest_known_version,
    online_backup,
    store_lock,
)

from .loading import Commands

log = structlog.get_logger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "sambung.db"
KEY = "secret.key"
POSTGRES_HINT = (
    "store.url is PostgreSQL: back it up with pg_dump (and keep the credentials key file, or"
    " SAMBUNG_SECRET_KEY, with it); see README, Deploy → Backup and restore"
)

Loader = Callable[[argparse.Namespace], tuple[Any, LoadedConfig]]


@dataclass(frozen=True)
class BackupReport:
    """What `backup` wrote."""

    path: Path
    schema_version: int
    key: str  # "file", "environment" or "none"
    bytes: int


@dataclass(frozen=True)
class RestoreReport:
    """What `restore` put back, and where the store it replaced went."""

    database: Path
    key_file: Path | None
    schema_version: int
    created_at: str
    set_aside: list[Path] = field(default_factory=list)
    key_source: str = "file"  # where the key was at backup time: "file", "environment", "none"


def sqlite_path(loaded: LoadedConfig) -> Path:
    """The config's SQLite file; PostgreSQL is refused with where to read instead."""
    from sambung.store.sqlite import SqliteStore

    store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
    if not isinstance(store, SqliteStore):
        raise BackupRefused(POSTGRES_HINT)
    return store.path


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_summary(loaded: LoadedConfig) -> dict[str, Any]:
    return {
        "path": str(loaded.path),
        "outlets": [outlet.id for outlet in loaded.config.outlets],
        "connections": [f"{c.outlet.id}/{c.name}" for c in loaded.connections],
        "sinks": sorted(loaded.config.sinks),
    }


def backup(
    loaded: LoadedConfig,
    out: Path,
    *,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
) -> BackupReport:
    """Write the archive `out` (replacing it atomically) from the store the config names."""
    from sambung.auth.credentials import KEY_ENV, key_file_of

    clock = clock or SystemClock()
    environ = os.environ if environ is None else environ
    db = sqlite_path(loaded)
    key_file = key_file_of(loaded)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sambung-backup-", dir=out.parent) as scratch:
        snapshot = Path(scratch) / DATABASE
        with store_lock(db, exclusive=False):
            version = online_backup(db, snapshot)
        members = {DATABASE: snapshot}
        if environ.get(KEY_ENV):
            key = "environment"
        elif key_file.exists():
            key = "file"
            members[KEY] = key_file
        else:
            key = "none"
        created = clock.now()
        manifest = {
            "format_version": FORMAT_VERSION,
            "sambung_version": __version__,
            "created_at": created.isoformat(),
            "store": {"kind": "sqlite", "schema_version": version, "path": str(db)},
            "key": {"source": key, "path": str(key_file) if key == "file" else None},
            "members": {name: sha256_of(path) for name, path in members.items()},
            "config": _config_summary(loaded),
        }
        partial = out.with_name(f".{out.name}.partial")
        partial.unlink(missing_ok=True)
        # 0600 from the first byte: the archive holds the key to every stored token.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as stream:
                with tarfile.open(fileobj=stream, mode="w:gz") as archive:
                    body = json.dumps(manifest, indent=2).encode()
                    archive.addfile(_info(MANIFEST, len(body), created), io.BytesIO(body))
                    for name, path in members.items():
                        with path.open("rb") as member:
                            size = path.stat().st_size
                            archive.addfile(_info(name, size, created), member)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(partial, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    log.info("backup.written", path=str(out), schema_version=version, key=key)
    return BackupReport(out, version, key, out.stat().st_size)


def _info(name: str, size: int, when: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(when.timestamp())
    return info


def restore(
    loaded: LoadedConfig,
    archive: Path,
    *,
    force: bool = False,
    clock: Clock | None = None,
) -> RestoreReport:
    """Check `archive`, then put its database and key where the config expects them."""
    from sambung.auth.credentials import key_file_of

    clock = clock or SystemClock()
    db = sqlite_path(loaded)
    key_file = key_file_of(loaded)
    db.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sambung-restore-", dir=db.parent) as scratch:
        manifest, files = _unpack(archive, Path(scratch))
        version = int(manifest["store"]["schema_version"])
        newest = newest_known_version()
        if version > newest:
            raise BackupRefused(
                f"{archive}: the store in it is at schema version {version}, newer than this"
                f" sambung knows ({newest}); restore it with sambung"
                f" {manifest.get('sambung_version', '?')} or newer"
            )
        try:
            found = check_database(files[DATABASE])
        except ConfigError as err:
            raise BackupRefused(f"{archive}: {DATABASE}: {err}") from err
        if found != version:
            raise BackupRefused(
                f"{archive}: the manifest says schema version {version}, the database is at {found}"
            )
        new_key = files.get(KEY)
        try:
            with store_lock(db, exclusive=True):
                aside = _set_aside(db, key_file, new_key, force, clock)
                os.replace(files[DATABASE], db)
                os.chmod(db, 0o600)
                if new_key is not None:
                    key_file.parent.mkdir(parents=True, exist_ok=True)
                    os.chmod(new_key, 0o600)
                    os.replace(new_key, key_file)
                _give_to_folder_owner([db, key_file] if new_key else [db], db.parent)
                _sync_dir(db.parent)
        except StoreInUse as err:
            raise BackupRefused(str(err.problems[0]).removeprefix("store.url: ")) from err
    log.info("backup.restored", path=str(archive), schema_version=version, set_aside=len(aside))
    return RestoreReport(
        db,
        key_file if new_key else None,
        version,
        str(manifest.get("created_at")),
        aside,
        str((manifest.get("key") or {}).get("source", "none")),
    )


def _unpack(archive: Path, into: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The manifest and each member written into `into`, every checksum verified."""
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 (closed by the `with` below)
    except (OSError, tarfile.TarError) as err:
        raise BackupRefused(f"{archive}: not a sambung backup ({err})") from err
    with tar:
        try:
            manifest = json.loads(_read(tar, MANIFEST, archive))
            wanted: dict[str, str] = dict(manifest["members"])
            int(manifest["store"]["schema_version"])
            format_version = int(manifest["format_version"])
        except (ValueError, KeyError, TypeError) as err:
            raise BackupRefused(f"{archive}: its manifest is not readable ({err})") from err
        if format_version > FORMAT_VERSION:
            raise BackupRefused(
                f"{archive}: backup format {format_version} is newer than this sambung reads"
                f" ({FORMAT_VERSION})"
            )
        if DATABASE not in wanted:
            raise BackupRefused(f"{archive}: the manifest lists no {DATABASE}")
        files: dict[str, Path] = {}
        for name, expected in wanted.items():
            if name not in (DATABASE, KEY):  # never a path from the archive on our disk
                raise BackupRefused(f"{archive}: unexpected member {name!r}")
            target = into / name
            digest = hashlib.sha256()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                source = _member(tar, name, archive)
                try:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                except (tarfile.TarError, EOFError, zlib.error) as err:
                    raise BackupRefused(f"{archive}: {name} cannot be read ({err})") from err
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != expected:
                raise BackupRefused(
                    f"{archive}: {name} does not match its checksum (the file is damaged)"
                )
            files[name] = target
    return manifest, files


def _member(tar: tarfile.TarFile, name: str, archive: Path) -> io.BufferedReader:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise BackupRefused(f"{archive}: {name} is missing") from None
    stream = tar.extractfile(info) if info.isfile() else None
    if stream is None:
        raise BackupRefused(f"{archive}: {name} is not a regular file")
    return stream  # type: ignore[return-value]


def _read(tar: tarfile.TarFile, name: str, archive: Path) -> bytes:
    try:
        return _member(tar, name, archive).read()
    except (OSError, tarfile.TarError, EOFError, zlib.error) as err:
        raise BackupRefused(f"{archive}: {name} cannot be read ({err})") from err


def _set_aside(
    db: Path, key_file: Path, new_key: Path | None, force: bool, clock: Clock
) -> list[Path]:
    """Move the existing store (and a key the archive replaces) into a dated folder beside it;
    without `force`, refuse if there is anything to move."""
    present = [p for p in (db, *(db.with_name(db.name + s) for s in COMPANIONS)) if p.exists()]
    if new_key is not None and key_file.exists() and sha256_of(key_file) != sha256_of(new_key):
        present.append(key_file)
    if not present:
        return []
    if not force:
        names = ", ".join(str(p) for p in present)
        raise BackupRefused(
            f"there is a store already ({names}); give --force to put it aside and restore"
        )
    folder = db.parent / f"before-restore-{clock.now():%Y%m%dT%H%M%SZ}"
    folder.mkdir(mode=0o700)
    moved = []
    for path in present:
        target = folder / path.name
        shutil.move(path, target)
        moved.append(target)
    return moved


def _give_to_folder_owner(paths: list[Path], folder: Path) -> None:
    """Run as root, hand the restored files to whoever owns the data folder (the service's
    user): a database only root may open would stop the daemon from starting."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    owner = folder.stat()
    for path in paths:
        os.chown(path, owner.st_uid, owner.st_gid)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the commands (credentials, and so the cryptography library, load only when one runs) --------


def add_backup_commands(commands: Commands, load: Loader) -> None:
    """Register `sambung backup` and `sambung restore`; `load` reads the config from args."""

    def command(name: str, help: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        return commands.add(name, help, lambda args: handler(args, load))

    made = command(
        "backup",
        "Write the SQLite store (an online snapshot), the credentials key and a manifest to OUT.",
        _backup,
    )
    made.add_argument("out", type=Path, metavar="OUT", help="the archive to write (.tar.gz)")
    put = command(
        "restore",
        "Check a backup, then put its store and key back (the daemon must be stopped).",
        _restore,
    )
    put.add_argument("archive", type=Path, metavar="ARCHIVE")
    put.add_argument(
        "--force", action="store_true", help="put an existing store aside (not deleted) first"
    )


def _backup(args: argparse.Namespace, load: Loader) -> int:
    from sambung.auth.credentials import KEY_ENV

    _, loaded = load(args)
    try:
        report = backup(loaded, args.out)
    except BackupRefused as err:
        return _refused("backup", err)
    print(
        f"wrote {report.path} ({report.bytes:,} bytes, mode 0600): store at schema version"
        f" {report.schema_version}"
    )
    if report.key == "file":
        print("it holds the credentials key: keep it as safe as the server itself")
    elif report.key == "environment":
        print(f"the credentials key is in {KEY_ENV}, not in the backup: keep it with the backup")
    return 0


def _restore(args: argparse.Namespace, load: Loader) -> int:
    from sambung.auth.credentials import KEY_ENV

    _, loaded = load(args)
    try:
        report = restore(loaded, args.archive, force=args.force)
    except BackupRefused as err:
        return _refused("restore", err)
    print(f"restored {report.database} (schema version {report.schema_version})")
    print(f"from the backup made at {report.created_at}")
    if report.key_file is not None:
        print(f"restored the credentials key to {report.key_file}")
        if os.environ.get(KEY_ENV):
            print(f"note: {KEY_ENV} is set, and the daemon uses it rather than the key file")
    elif report.key_source == "environment":
        print(f"the credentials key was in {KEY_ENV} when this backup was made: set the same one")
    for path in report.set_aside:
        print(f"set aside {path}")
    return 0


def _refused(what: str, err: BackupRefused) -> int:
    import sys

    print(f"sambung {what}: {err}", file=sys.stderr)
    return 1
