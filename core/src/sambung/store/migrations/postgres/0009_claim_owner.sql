-- Claims expire unless their owner renews them (no more session locks to tell who is alive):
-- a renewal and a fenced settle find a replica's claimed rows by id and owner, and releasing
-- a replica's own claims at start-up finds them through this index.
CREATE INDEX outbox_claimed_by ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
