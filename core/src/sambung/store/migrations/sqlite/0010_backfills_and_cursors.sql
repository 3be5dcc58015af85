-- Cursors an operator can set and reset (`sambung cursor`). Rebuilt because SQLite cannot drop
-- NOT NULL: a reset keeps the row, with no value, so its generation still fences a poll page
-- that was in flight. `generation` counts operator changes: a poll's cursor update carries the
-- generation it read and moves the cursor only while that is still the row's. `moved_by` says
-- which poll run (or which operator) moved it last; `updated_at` says when.
CREATE TABLE cursors_new (
    outlet     TEXT NOT NULL,
    connector  TEXT NOT NULL,
    value      TEXT,
    updated_at TEXT NOT NULL,
    moved_by   TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (outlet, connector)
);
INSERT INTO cursors_new (outlet, connector, value, updated_at)
    SELECT outlet, connector, value, updated_at FROM cursors;
DROP TABLE cursors;
ALTER TABLE cursors_new RENAME TO cursors;

-- Every operator change of a cursor: who, when, from what to what, and why.
CREATE TABLE cursor_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    outlet     TEXT NOT NULL,
    connector  TEXT NOT NULL,
    before     TEXT,
    after      TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         TEXT NOT NULL
);
CREATE INDEX cursor_changes_connection ON cursor_changes (outlet, connector, id);

-- A window re-polled on request (`sambung backfill`), apart from the live cursor. `position`
-- is the task's own cursor inside the window, committed with each page's records, so a
-- restarted daemon resumes from the last committed page.
CREATE TABLE backfills (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    outlet            TEXT NOT NULL,
    connector         TEXT NOT NULL,
    since             TEXT NOT NULL,
    until             TEXT NOT NULL,
    state             TEXT NOT NULL,          -- queued | running | done | failed | cancelled
    position          TEXT,
    pages             INTEGER NOT NULL DEFAULT 0,
    records_new       INTEGER NOT NULL DEFAULT 0,
    records_changed   INTEGER NOT NULL DEFAULT 0,
    records_unchanged INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    requested_by      TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    updated_at        TEXT NOT NULL
);
CREATE INDEX backfills_connection ON backfills (outlet, connector, state);
