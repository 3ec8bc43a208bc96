-- Gatehouse schema, SQLite dialect. Keep in step with migrations/postgres.
-- Times are epoch milliseconds (INTEGER); ids are UUID strings; flags are 0/1.

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    email               TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    gateway_key_hash    TEXT NOT NULL UNIQUE,
    gateway_key_prefix  TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE services (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    name               TEXT NOT NULL,
    target_url         TEXT NOT NULL,
    health_check_path  TEXT,
    timeout_ms         INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    deleted_at         INTEGER
);
CREATE INDEX services_tenant ON services (tenant_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE routes (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    method               TEXT NOT NULL,
    path_pattern         TEXT NOT NULL,
    path_shape           TEXT NOT NULL,
    service_id           TEXT NOT NULL REFERENCES services(id),
    auth_required        INTEGER NOT NULL,
    rate_limit_override  INTEGER,
    enabled              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER
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
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    revoked_at       INTEGER
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
    status_code  INTEGER NOT NULL,
    latency_ms   REAL NOT NULL,
    client_ip    TEXT NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
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
    status_code    INTEGER,
    occurrences    INTEGER NOT NULL,
    first_seen_at  INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    resolved       INTEGER NOT NULL,
    resolved_at    INTEGER,
    created_at     INTEGER NOT NULL
);
CREATE INDEX error_events_tenant_resolved ON error_events (tenant_id, resolved, last_seen_at DESC);

CREATE TABLE health_snapshots (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    service_id   TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    http_status  INTEGER,
    latency_ms   REAL,
    error        TEXT,
    checked_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX health_snapshots_service_time ON health_snapshots (tenant_id, service_id, checked_at DESC);

CREATE TABLE metrics_minutes (
    tenant_id           TEXT NOT NULL,
    route_id            TEXT NOT NULL,
    node_id             TEXT NOT NULL,
    minute_start        INTEGER NOT NULL,
    request_count       INTEGER NOT NULL,
    client_error_count  INTEGER NOT NULL,
    error_count         INTEGER NOT NULL,
    latency_histogram   BLOB NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, minute_start, route_id, node_id)
);

CREATE TABLE gateway_nodes (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    node_name        TEXT NOT NULL,
    replica_id       TEXT NOT NULL,
    connected_at     INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    disconnected_at  INTEGER
);
CREATE INDEX gateway_nodes_tenant_live ON gateway_nodes (tenant_id, last_seen_at) WHERE disconnected_at IS NULL;
