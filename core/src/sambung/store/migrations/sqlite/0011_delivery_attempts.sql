-- Every delivery attempt of every outbox row, written in the transaction that settles it, so an
-- operator can see why a delivery failed (the receiver's status and answer) and when it goes
-- again. No foreign key to outbox: pruning delivered rows removes their attempts itself, and a
-- history row must never block (or slow) that delete.
CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY,
    outbox_id       INTEGER NOT NULL,
    sink            TEXT NOT NULL,
    record_id       INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    latency_ms      INTEGER,
    outcome         TEXT NOT NULL,
    http_status     INTEGER,
    error_type      TEXT,
    error           TEXT,
    response        TEXT,
    next_attempt_at TEXT
);
-- One row's attempts in order, and its latest one (`deliveries list`).
CREATE INDEX delivery_attempts_row ON delivery_attempts (outbox_id, id);
-- No index on started_at: every index costs each of the many inserts on the outbox's hot path,
-- and retention prunes the oldest ids first (attempts are written in time order).
