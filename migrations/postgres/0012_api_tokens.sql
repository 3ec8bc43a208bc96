-- Automation tokens: long-lived, revocable, scoped tenant tokens for CI
-- (`gt_...`), stored as the SHA-256 of the token only.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    token_prefix  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at) WHERE revoked_at IS NULL;
