-- Tenant plugins: uploaded Wasm components, validated against the
-- gatehouse:plugin world, identified by their SHA-256.
CREATE TABLE plugins (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    wasm        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER
);
CREATE INDEX plugins_tenant ON plugins (tenant_id, created_at) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX plugins_live_name_version ON plugins (tenant_id, name, version) WHERE deleted_at IS NULL;
