-- Config deltas. Each service, route and consumer row carries the config
-- version its last change is part of: the tenant's version + 1, the one the
-- config write that changes it commits (writes run one at a time per
-- tenant; a row changed behind the control plane's back goes with the next
-- write). The triggers below set it, so no write can forget it; a change of
-- a route's plugins stamps the route. What changed since version V is the
-- rows stamped above V, deleted ones included. config_history names the revision of each recent version: a
-- node's config is a base a delta can start from only when its revision is
-- this database's for that version (not a config from before a restore).
ALTER TABLE services ADD COLUMN config_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE routes ADD COLUMN config_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE consumers ADD COLUMN config_version BIGINT NOT NULL DEFAULT 0;
-- Rows from before are part of their tenant's current version, which
-- the history names: a node serving it is sent only what changes next.
UPDATE services SET config_version = (SELECT config_version FROM tenants WHERE id = services.tenant_id);
UPDATE routes SET config_version = (SELECT config_version FROM tenants WHERE id = routes.tenant_id);
UPDATE consumers SET config_version = (SELECT config_version FROM tenants WHERE id = consumers.tenant_id);
CREATE INDEX services_config_version ON services (tenant_id, config_version);
CREATE INDEX routes_config_version ON routes (tenant_id, config_version);
CREATE INDEX consumers_config_version ON consumers (tenant_id, config_version);

CREATE TABLE config_history (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    version    BIGINT NOT NULL,
    revision   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
INSERT INTO config_history (tenant_id, version, revision)
    SELECT id, config_version, config_revision FROM tenants;

-- The tenant's config lock first (the one a config write holds, see
-- Store::serialize_on): a write made outside a config write waits for the
-- one in progress and reads the version it committed, so it is never
-- stamped with a version already sent.
CREATE FUNCTION gatehouse_stamp_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('config:' || NEW.tenant_id, 0));
    NEW.config_version := (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER services_stamp BEFORE INSERT OR UPDATE ON services
    FOR EACH ROW EXECUTE FUNCTION gatehouse_stamp_config_version();
CREATE TRIGGER routes_stamp BEFORE INSERT OR UPDATE ON routes
    FOR EACH ROW EXECUTE FUNCTION gatehouse_stamp_config_version();
CREATE TRIGGER consumers_stamp BEFORE INSERT OR UPDATE ON consumers
    FOR EACH ROW EXECUTE FUNCTION gatehouse_stamp_config_version();

-- The route's own trigger sets the version.
CREATE FUNCTION gatehouse_stamp_route_of_plugin() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE routes SET config_version = config_version WHERE id = OLD.route_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE routes SET config_version = config_version WHERE id = NEW.route_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER route_plugins_stamp AFTER INSERT OR UPDATE OR DELETE ON route_plugins
    FOR EACH ROW EXECUTE FUNCTION gatehouse_stamp_route_of_plugin();
