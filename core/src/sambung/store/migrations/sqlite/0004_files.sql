-- CSV files imported by the file-drop runner, the upload endpoint or `sambung import`, by
-- content: a file dropped again (under any name) is recognised and not imported twice.
CREATE TABLE imported_files (
    id            INTEGER PRIMARY KEY,
    outlet        TEXT NOT NULL,
    connector     TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    rows_imported INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    imported_at   TEXT NOT NULL,
    UNIQUE (outlet, connector, sha256)
);
