-- Credentials the daemon obtained at run time (OAuth tokens), encrypted by core before they
-- reach the store: `secret` is an AES-GCM blob the store can neither read nor log.
CREATE TABLE credentials (
    outlet      TEXT NOT NULL,
    connector   TEXT NOT NULL,
    kind        TEXT NOT NULL,              -- oauth2 (what the blob holds)
    secret      BLOB NOT NULL,
    expires_at  TEXT,                       -- the access token's expiry, shown by `credentials list`
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (outlet, connector)
);

-- Pending OAuth connect flows: one row per authorization URL handed out. A state is single use
-- (`consumed_at`) and short-lived (`expires_at`); the PKCE verifier inside `secret` is encrypted.
CREATE TABLE oauth_states (
    state_hash  TEXT PRIMARY KEY,           -- SHA-256 of the state sent to the vendor
    outlet      TEXT NOT NULL,
    connector   TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    secret      BLOB,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    consumed_at TEXT
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
