-- Credentials the daemon obtained at run time (OAuth tokens), encrypted by core before they
-- reach the store: `secret` is an AES-GCM blob the store can neither read nor log.
CREATE TABLE credentials (
    outlet      text NOT NULL,
    connector   text NOT NULL,
    kind        text NOT NULL,              -- oauth2 (what the blob holds)
    secret      bytea NOT NULL,
    expires_at  timestamptz,                -- the access token's expiry, shown by `credentials list`
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (outlet, connector)
);

-- Pending OAuth connect flows: one row per authorization URL handed out. A state is single use
-- (`consumed_at`) and short-lived (`expires_at`); the PKCE verifier inside `secret` is encrypted.
CREATE TABLE oauth_states (
    state_hash   text PRIMARY KEY,          -- SHA-256 of the state sent to the vendor
    outlet       text NOT NULL,
    connector    text NOT NULL,
    redirect_uri text NOT NULL,
    secret       bytea,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    consumed_at  timestamptz
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
