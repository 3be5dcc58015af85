-- `outbox_stats` (console overview and sink pages, the metrics refresh) read the whole outbox,
-- payloads included: 15 ms for a month of one outlet, more with each month kept. Its counts per
-- (sink, status) now come from a covering scan of `outbox_claim` (sink, status, ...), and what
-- it says of pending rows (the oldest, how many retry) from this index of pending rows only,
-- which a backlog keeps small and a drained outbox keeps empty. `status` is a column too,
-- though always 'pending': without it SQLite's planner does not see the index as covering.
CREATE INDEX outbox_pending ON outbox (sink, status, created_at, attempts)
    WHERE status = 'pending';
