-- An operator's pause of one connection (`sambung pause`), kept in the store so it survives a
-- restart and every replica sees it. One row per connection that was ever paused or resumed:
-- `paused` is its state now, `actor`, `reason` and `changed_at` the last change.
CREATE TABLE connection_controls (
    outlet     TEXT NOT NULL,
    connector  TEXT NOT NULL,
    paused     INTEGER NOT NULL,
    reason     TEXT,
    actor      TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (outlet, connector)
);

-- Every pause and resume: who, when, why (the console and `GET .../pause` list them).
CREATE TABLE connection_control_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    outlet     TEXT NOT NULL,
    connector  TEXT NOT NULL,
    paused     INTEGER NOT NULL,
    reason     TEXT,
    actor      TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX connection_control_changes_connection
    ON connection_control_changes (outlet, connector, id);

-- One row per poll run (kind 'live') or backfill slice (kind 'backfill') of a connection, written
-- once when it ends; the oldest beyond the newest few hundred of a connection are pruned in the
-- same transaction.
CREATE TABLE poll_runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    outlet            TEXT NOT NULL,
    connector         TEXT NOT NULL,
    kind              TEXT NOT NULL,
    started_at        TEXT NOT NULL,
    finished_at       TEXT NOT NULL,
    outcome           TEXT NOT NULL,          -- ok | failed | needs_reauth | lease_lost
    pages             INTEGER NOT NULL,
    records_fetched   INTEGER NOT NULL,
    records_new       INTEGER NOT NULL,
    records_changed   INTEGER NOT NULL,
    error             TEXT,
    cursor_before     TEXT,
    cursor_after      TEXT
);
CREATE INDEX poll_runs_connection ON poll_runs (outlet, connector, id);
