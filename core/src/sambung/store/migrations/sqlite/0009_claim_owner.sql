-- Claims name their owner here too, as on PostgreSQL: the settle of a delivery and the
-- renewal of a claim check that the claim is still this owner's, in the same transaction, so
-- both stores fence deliveries the same way (one process uses a SQLite file, but its claims
-- expire and pass on all the same when they are not renewed).
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
