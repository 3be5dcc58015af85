-- Replicas: named leases, each held by one owner at a time until it expires.

-- A lease names a piece of work only one replica may do at a time: a poll loop
-- (`poll:OUTLET/CONNECTOR`), a file-drop inbox (`filedrop:OUTLET/CONNECTOR`), a replica's own
-- heartbeat (`replica:ID`), or a short critical section (`exclusive:NAME`). It is taken when
-- free, expired or already held by the same owner, and renewed by moving `expires_at`.
CREATE TABLE leases (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires_at timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at timestamptz NOT NULL
);
