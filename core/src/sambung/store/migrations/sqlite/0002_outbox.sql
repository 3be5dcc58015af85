-- The dispatcher's bookkeeping: a claim lease, and what the last attempt answered.

-- A claimed row is not due again until its lease runs out, so a crash mid-batch re-delivers it
-- (with the same idempotency key) once the lease has passed or the daemon restarts.
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
-- Due rows of one sink, oldest first: the claim query walks this index.
CREATE INDEX outbox_claim ON outbox (sink, status, next_attempt_at, id);
-- The older pending revisions of one record for one sink (per-record ordering).
CREATE INDEX outbox_record_sink ON outbox (sink, record_id, revision) WHERE status = 'pending';
CREATE INDEX outbox_delivered ON outbox (status, delivered_at) WHERE status = 'delivered';
CREATE INDEX dead_letters_outbox ON dead_letters (outbox_id) WHERE outbox_id IS NOT NULL;
