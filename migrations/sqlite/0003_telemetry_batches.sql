-- Telemetry batches already stored, so a batch a node sends twice (its ack
-- was lost) is stored once.
CREATE TABLE telemetry_batches (
    tenant_id    TEXT NOT NULL,
    batch_id     TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, batch_id)
);
CREATE INDEX telemetry_batches_received ON telemetry_batches (received_at);
CREATE INDEX metrics_minutes_minute ON metrics_minutes (minute_start);
CREATE INDEX request_logs_time ON request_logs (created_at);
CREATE INDEX health_snapshots_time ON health_snapshots (checked_at);
