-- Every record insert maintains every index on `records`, and a CSV import inserts a million.
-- The days whose records changed since an instant are found through `records_updated`
-- (updated_at) instead: the rows written since the summary loop last looked are few, so that
-- range is short, and the per-outlet twin of the index was paying on every insert for nothing.
DROP INDEX records_kind_updated;
