-- A random id per committed config change: with the tenant and the version
-- it names one config, so a node can tell another tenant's config, or one
-- from before a database restore, from the current one.
ALTER TABLE tenants ADD COLUMN config_revision TEXT NOT NULL DEFAULT '';
-- Bumped by a password reset: JWTs carry the generation they were issued
-- at, and older ones are refused.
ALTER TABLE tenants ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
-- Failed logins and resets per hashed key (an email, a client IP), shared by
-- every replica.
CREATE TABLE auth_failures (
    throttle_key    TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    window_started  INTEGER NOT NULL
);
CREATE INDEX auth_failures_window ON auth_failures (window_started);
