-- Replicas: named leases, each held by one owner at a time until it expires.

-- A lease names a piece of work only one replica may do at a time: a poll loop
-- (`poll:OUTLET/CONNECTOR`), a file-drop inbox (`filedrop:OUTLET/CONNECTOR`), a replica's own
-- heartbeat (`replica:ID`), or a short critical section (`exclusive:NAME`). It is taken when
-- free, expired or already held by the same owner, and renewed by moving `expires_at`.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    renewed_at TEXT NOT NULL
);

