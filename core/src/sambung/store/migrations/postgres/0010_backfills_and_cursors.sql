-- Cursors an operator can set and reset (`sambung cursor`): a reset keeps the row, with no
-- value, so its generation still fences a poll page that was in flight. `generation` counts
-- operator changes: a poll's cursor update carries the generation it read and moves the cursor
-- only while that is still the row's (checked in ON CONFLICT's WHERE, which PostgreSQL
-- re-evaluates on the row as an operator's concurrent change left it). `moved_by` says which
-- poll run (or which operator) moved it last; `updated_at` says when.
ALTER TABLE cursors ALTER COLUMN value DROP NOT NULL;
ALTER TABLE cursors ADD COLUMN moved_by text;
ALTER TABLE cursors ADD COLUMN generation bigint NOT NULL DEFAULT 0;

-- Every operator change of a cursor: who, when, from what to what, and why.
CREATE TABLE cursor_changes (
    id         bigserial PRIMARY KEY,
    outlet     text NOT NULL,
    connector  text NOT NULL,
    before     text,
    after      text,
    actor      text NOT NULL,
    reason     text,
    at         timestamptz NOT NULL
);
CREATE INDEX cursor_changes_connection ON cursor_changes (outlet, connector, id);

-- A window re-polled on request (`sambung backfill`), apart from the live cursor. `position`
-- is the task's own cursor inside the window, committed with each page's records, so a
-- restarted daemon resumes from the last committed page.
CREATE TABLE backfills (
    id                bigserial PRIMARY KEY,
    outlet            text NOT NULL,
    connector         text NOT NULL,
    since             timestamptz NOT NULL,
    until             timestamptz NOT NULL,
    state             text NOT NULL,          -- queued | running | done | failed | cancelled
    position          text,
    pages             bigint NOT NULL DEFAULT 0,
    records_new       bigint NOT NULL DEFAULT 0,
    records_changed   bigint NOT NULL DEFAULT 0,
    records_unchanged bigint NOT NULL DEFAULT 0,
    error             text,
    requested_by      text NOT NULL,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX backfills_connection ON backfills (outlet, connector, state);
