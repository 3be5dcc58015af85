-- The health of each polled connection, for `sambung status` and for resuming after a restart.
CREATE TABLE connection_states (
    outlet          TEXT NOT NULL,
    connector       TEXT NOT NULL,
    mode            TEXT NOT NULL,
    state           TEXT NOT NULL,          -- ok | failing | needs_reauth | paused
    last_run_at     TEXT,
    last_success_at TEXT,
    last_error      TEXT,
    last_error_at   TEXT,
    records_fetched INTEGER NOT NULL DEFAULT 0,
    -- Which credentials were refused (a hash), so needs_reauth ends once they change.
    refused_credentials TEXT,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (outlet, connector, mode)
);
