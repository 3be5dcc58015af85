-- An operator's pause of one connection (`sambung pause`), kept in the store so it survives a
-- restart and every replica sees it. One row per connection that was ever paused or resumed:
-- `paused` is its state now, `actor`, `reason` and `changed_at` the last change.
CREATE TABLE connection_controls (
    outlet     text NOT NULL,
    connector  text NOT NULL,
    paused     boolean NOT NULL,
    reason     text,
    actor      text NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (outlet, connector)
);

-- Every pause and resume: who, when, why (the console and `GET .../pause` list them).
CREATE TABLE connection_control_changes (
    id         bigserial PRIMARY KEY,
    outlet     text NOT NULL,
    connector  text NOT NULL,
    paused     boolean NOT NULL,
    reason     text,
    actor      text NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX connection_control_changes_connection
    ON connection_control_changes (outlet, connector, id);

-- One row per poll run (kind 'live') or backfill slice (kind 'backfill') of a connection, written
-- once when it ends; the oldest beyond the newest few hundred of a connection are pruned in the
-- same transaction.
CREATE TABLE poll_runs (
    id                bigserial PRIMARY KEY,
    outlet            text NOT NULL,
    connector         text NOT NULL,
    kind              text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    outcome           text NOT NULL,          -- ok | failed | needs_reauth | lease_lost
    pages             bigint NOT NULL,
    records_fetched   bigint NOT NULL,
    records_new       bigint NOT NULL,
    records_changed   bigint NOT NULL,
    error             text,
    cursor_before     text,
    cursor_after      text
);
CREATE INDEX poll_runs_connection ON poll_runs (outlet, connector, id);
