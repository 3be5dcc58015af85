-- The health of each polled connection, for `sambung status` and for resuming after a restart.
CREATE TABLE connection_states (
    outlet          text NOT NULL,
    connector       text NOT NULL,
    mode            text NOT NULL,
    state           text NOT NULL,          -- ok | failing | needs_reauth | paused
    last_run_at     timestamptz,
    last_success_at timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    records_fetched bigint NOT NULL DEFAULT 0,
    -- Which credentials were refused (a hash), so needs_reauth ends once they change.
    refused_credentials text,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (outlet, connector, mode)
);
