-- `outbox_stats` (console overview and sink pages, the metrics refresh) read the whole outbox,
-- payloads included: 17 ms for a month of one outlet, more with each month kept. Its counts per
-- (sink, status) now come from an index-only scan of `outbox_sink_status` (SQLite's claim index
-- has these columns first already), and what it says of pending rows (the oldest, how many
-- retry) from `outbox_pending`, of pending rows only.
CREATE INDEX outbox_sink_status ON outbox (sink, status);
CREATE INDEX outbox_pending ON outbox (sink, created_at, attempts) WHERE status = 'pending';
