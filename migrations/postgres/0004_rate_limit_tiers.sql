-- Per-tenant rate-limit tiers (requests per minute; NULL = unlimited) and the
-- per-client-IP limit of anonymous traffic on open routes.
CREATE TABLE rate_limit_tiers (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    name                 TEXT NOT NULL,
    requests_per_minute  BIGINT,
    PRIMARY KEY (tenant_id, name)
);
ALTER TABLE tenants ADD COLUMN anonymous_requests_per_minute BIGINT DEFAULT 60;
INSERT INTO rate_limit_tiers (tenant_id, name, requests_per_minute) SELECT id, 'free', 60 FROM tenants;
INSERT INTO rate_limit_tiers (tenant_id, name, requests_per_minute) SELECT id, 'pro', 600 FROM tenants;
INSERT INTO rate_limit_tiers (tenant_id, name, requests_per_minute) SELECT id, 'enterprise', 6000 FROM tenants;
INSERT INTO rate_limit_tiers (tenant_id, name, requests_per_minute) SELECT id, 'unlimited', NULL FROM tenants;
