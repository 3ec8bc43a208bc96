-- Fewer index entries per request log row, for ingestion speed (each
-- index is a B-tree insert per row). Retention deletes per tenant through
-- request_logs_tenant_time instead of a time index of its own; and only
-- rows with a consumer are entered in the consumer index (the filter
-- `consumer_id = $x` implies it is not null, so the partial index serves it).
DROP INDEX request_logs_time;
DROP INDEX request_logs_tenant_consumer_time;
CREATE INDEX request_logs_tenant_consumer_time ON request_logs (tenant_id, consumer_id, created_at DESC)
    WHERE consumer_id IS NOT NULL;
