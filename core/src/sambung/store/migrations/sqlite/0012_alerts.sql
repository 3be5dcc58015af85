-- The webhook gap report and alerts.

-- When a webhook first delivered each record; NULL while none has (the poll, an import or a
-- replay brought it). Set on insert by a webhook, or later when a webhook delivers a record
-- a poll stored first (a late webhook is no loss). Kept on the row, not looked up in
-- raw_events, because a poll stores no raw event and a repeat webhook changes no record.
ALTER TABLE records ADD COLUMN webhook_at TEXT;

-- One row per episode of an alert condition: opened when a rule first finds (rule, subject),
-- recovered when it no longer does. At most one open episode per (rule, subject), so of two
-- replicas evaluating at once exactly one opens it (and exactly one closes it).
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    rule         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    message      TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    recovered_at TEXT
);
CREATE UNIQUE INDEX alerts_open ON alerts (rule, subject) WHERE recovered_at IS NULL;
CREATE INDEX alerts_opened ON alerts (opened_at);

-- Each transition (fired, recovered) to send on each channel: written in the transition's
-- transaction, so a send that fails is retried from here and never lost.
CREATE TABLE alert_notices (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id),
    transition      TEXT NOT NULL,          -- fired | recovered
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',  -- pending | sent
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by      TEXT,
    claimed_until   TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    UNIQUE (alert_id, transition, channel)
);
CREATE INDEX alert_notices_due ON alert_notices (status, next_attempt_at);
