-- Each record's business date (the outlet's local day) in a column, so the transactions of one
-- outlet and day can be found for its daily summary without reading every payload.
ALTER TABLE records ADD COLUMN business_date date;
UPDATE records SET business_date = (payload::jsonb ->> 'business_date')::date
    WHERE payload::jsonb ? 'business_date';
-- The transactions of one outlet's day, and the days whose records changed since an instant.
CREATE INDEX records_business_date ON records (outlet, kind, business_date);
CREATE INDEX records_kind_updated ON records (outlet, kind, updated_at);
