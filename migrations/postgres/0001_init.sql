-- Gatehouse schema, PostgreSQL dialect. Keep in step with migrations/sqlite.
-- Times are epoch milliseconds (BIGINT), as in SQLite, so queries are shared.

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    email               TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    gateway_key_hash    TEXT NOT NULL UNIQUE,
    gateway_key_prefix  TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE services (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    name               TEXT NOT NULL,
    target_url         TEXT NOT NULL,
    health_check_path  TEXT,
    timeout_ms         BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    deleted_at         BIGINT
);
CREATE INDEX services_tenant ON services (tenant_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE routes (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    method               TEXT NOT NULL,
    path_pattern         TEXT NOT NULL,
    path_shape           TEXT NOT NULL,
    service_id           TEXT NOT NULL REFERENCES services(id),
    auth_required        BOOLEAN NOT NULL,
    rate_limit_override  BIGINT,
    enabled              BOOLEAN NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX routes_tenant ON routes (tenant_id, created_at) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX routes_live_method_path ON routes (tenant_id, method, path_shape)
    WHERE deleted_at IS NULL;

CREATE TABLE consumers (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    name             TEXT NOT NULL,
    api_key_hash     TEXT NOT NULL UNIQUE,
    api_key_prefix   TEXT NOT NULL,
    rate_limit_tier  TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    revoked_at       BIGINT
);
CREATE INDEX consumers_tenant ON consumers (tenant_id, created_at) WHERE revoked_at IS NULL;

CREATE TABLE request_logs (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    route_id     TEXT,
    service_id   TEXT,
    consumer_id  TEXT,
    status_code  BIGINT NOT NULL,
    latency_ms   DOUBLE PRECISION NOT NULL,
    client_ip    TEXT NOT NULL,
    bytes_in     BIGINT NOT NULL,
    bytes_out    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX request_logs_tenant_time ON request_logs (tenant_id, created_at DESC, id DESC);
CREATE INDEX request_logs_tenant_consumer_time ON request_logs (tenant_id, consumer_id, created_at DESC);
CREATE INDEX request_logs_tenant_status_time ON request_logs (tenant_id, status_code, created_at DESC);

CREATE TABLE error_events (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    message        TEXT NOT NULL,
    route_id       TEXT,
    service_id     TEXT,
    plugin_id      TEXT,
    status_code    BIGINT,
    occurrences    BIGINT NOT NULL,
    first_seen_at  BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    resolved       BOOLEAN NOT NULL,
    resolved_at    BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX error_events_tenant_resolved ON error_events (tenant_id, resolved, last_seen_at DESC);

CREATE TABLE health_snapshots (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    service_id   TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    http_status  BIGINT,
    latency_ms   DOUBLE PRECISION,
    error        TEXT,
    checked_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX health_snapshots_service_time ON health_snapshots (tenant_id, service_id, checked_at DESC);

CREATE TABLE metrics_minutes (
    tenant_id           TEXT NOT NULL,
    route_id            TEXT NOT NULL,
    node_id             TEXT NOT NULL,
    minute_start        BIGINT NOT NULL,
    request_count       BIGINT NOT NULL,
    client_error_count  BIGINT NOT NULL,
    error_count         BIGINT NOT NULL,
    latency_histogram   BYTEA NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, minute_start, route_id, node_id)
);

CREATE TABLE gateway_nodes (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    node_name        TEXT NOT NULL,
    replica_id       TEXT NOT NULL,
    connected_at     BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    disconnected_at  BIGINT
);
CREATE INDEX gateway_nodes_tenant_live ON gateway_nodes (tenant_id, last_seen_at) WHERE disconnected_at IS NULL;
