-- The dispatcher's bookkeeping: a claim lease, who holds it, and what the last attempt answered.

-- A claimed row is not due again until its lease runs out, so a crash mid-batch re-delivers it
-- (with the same idempotency key) once the lease has passed or its owner starts again.
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
-- Several replicas claim from one outbox: each releases only its own claims at start-up.
ALTER TABLE outbox ADD COLUMN claimed_by text;
-- Due rows of one sink, oldest first: the claim query walks this index.
CREATE INDEX outbox_claim ON outbox (sink, next_attempt_at, id) WHERE status = 'pending';
-- The older pending revisions of one record for one sink (per-record ordering).
CREATE INDEX outbox_record_sink ON outbox (sink, record_id, revision) WHERE status = 'pending';
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status IN ('delivered', 'superseded');
CREATE INDEX dead_letters_outbox ON dead_letters (outbox_id) WHERE outbox_id IS NOT NULL;
