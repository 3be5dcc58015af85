-- Times are UTC text in one fixed format (2026-11-26T22:27:32.000000Z), so they sort as text.

CREATE TABLE raw_events (
    id            INTEGER PRIMARY KEY,
    outlet        TEXT NOT NULL,
    source_system TEXT NOT NULL,
    channel       TEXT NOT NULL,
    dedup_key     TEXT NOT NULL,
    event_type    TEXT,
    content_type  TEXT,
    body          BLOB NOT NULL,
    received_at   TEXT NOT NULL,
    UNIQUE (outlet, source_system, dedup_key)
);

CREATE TABLE records (
    id                INTEGER PRIMARY KEY,
    outlet            TEXT NOT NULL,
    source_system     TEXT NOT NULL,
    kind              TEXT NOT NULL,
    external_id       TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    revision          INTEGER NOT NULL,
    source_updated_at TEXT,
    payload           TEXT NOT NULL,
    raw_event_id      INTEGER REFERENCES raw_events (id),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (outlet, source_system, kind, external_id)
);
CREATE INDEX records_updated ON records (updated_at);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    sink            TEXT NOT NULL,
    record_id       INTEGER NOT NULL REFERENCES records (id),
    revision        INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX outbox_due ON outbox (sink, status, next_attempt_at);
CREATE INDEX outbox_record ON outbox (record_id, revision);

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    stage        TEXT NOT NULL,
    outlet       TEXT NOT NULL,
    connector    TEXT NOT NULL,
    error_type   TEXT NOT NULL,
    error        TEXT NOT NULL,
    field        TEXT,
    raw_event_id INTEGER REFERENCES raw_events (id),
    outbox_id    INTEGER REFERENCES outbox (id),
    payload      TEXT,
    status       TEXT NOT NULL DEFAULT 'open',
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX dead_letters_open ON dead_letters (status, stage, created_at);
-- A resent body that fails the same way again is one entry, not one per delivery attempt.
CREATE UNIQUE INDEX dead_letters_raw_once ON dead_letters (stage, raw_event_id, error)
    WHERE raw_event_id IS NOT NULL AND status = 'open';

CREATE TABLE cursors (
    outlet     TEXT NOT NULL,
    connector  TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (outlet, connector)
);
