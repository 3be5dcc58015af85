"""Each backend's schema: numbered SQL files (`NNNN_name.sql`), applied in order."""

from __future__ import annotations

from importlib import resources

from sambung.errors import ConfigError

Migration = tuple[int, str, str]


def load_migrations(package: str) -> list[Migration]:
    """(version, name, SQL) of every `NNNN_name.sql` file in `package`, in order."""
    found = []
    for entry in resources.files(package).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


# Not named `sqlite` and `postgres`: importing those subpackages sets attributes of those names
# on this module, which would replace the functions.
def sqlite_migrations() -> list[Migration]:
    """(version, name, SQL) of every SQLite migration shipped with this sambung, in order."""
    return load_migrations("sambung.store.migrations.sqlite")


def postgres_migrations() -> list[Migration]:
    """(version, name, SQL) of every PostgreSQL migration shipped with this sambung, in order."""
    return load_migrations("sambung.store.migrations.postgres")


def check_known(applied: set[int], known: list[Migration]) -> None:
    """Raise `ConfigError` if the database is at a version newer than this sambung knows."""
    newest_known = known[-1][0] if known else 0
    if applied and max(applied) > newest_known:
        raise ConfigError(
            f"store.url: the database schema is at version {max(applied)}, newer than this "
            f"sambung knows ({newest_known}); upgrade sambung before running it on this store"
        )
