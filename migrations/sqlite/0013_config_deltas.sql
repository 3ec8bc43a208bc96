-- Config deltas. Each service, route and consumer row carries the config
-- version its last change is part of: the tenant's version + 1, the one the
-- config write that changes it commits (writes run one at a time per
-- tenant; a row changed behind the control plane's back goes with the next
-- write). The triggers below set it, so no write can forget it; a change of
-- a route's plugins stamps the route. What changed since version V is the
-- rows stamped above V, deleted ones included. config_history names the revision of each recent version: a
-- node's config is a base a delta can start from only when its revision is
-- this database's for that version (not a config from before a restore).
ALTER TABLE services ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE routes ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consumers ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;
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
    version    INTEGER NOT NULL,
    revision   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
INSERT INTO config_history (tenant_id, version, revision)
    SELECT id, config_version, config_revision FROM tenants;

CREATE TRIGGER services_stamp_insert AFTER INSERT ON services BEGIN
    UPDATE services SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.id;
END;
CREATE TRIGGER services_stamp_update AFTER UPDATE ON services
    WHEN NEW.config_version IS NOT (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) BEGIN
    UPDATE services SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.id;
END;

CREATE TRIGGER routes_stamp_insert AFTER INSERT ON routes BEGIN
    UPDATE routes SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.id;
END;
CREATE TRIGGER routes_stamp_update AFTER UPDATE ON routes
    WHEN NEW.config_version IS NOT (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) BEGIN
    UPDATE routes SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.id;
END;

CREATE TRIGGER consumers_stamp_insert AFTER INSERT ON consumers BEGIN
    UPDATE consumers SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.id;
END;
CREATE TRIGGER consumers_stamp_update AFTER UPDATE ON consumers
    WHEN NEW.config_version IS NOT (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) BEGIN
    UPDATE consumers SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.id;
END;

CREATE TRIGGER route_plugins_stamp_insert AFTER INSERT ON route_plugins BEGIN
    UPDATE routes SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.route_id;
END;

CREATE TRIGGER route_plugins_stamp_update AFTER UPDATE ON route_plugins BEGIN
    UPDATE routes SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = NEW.tenant_id) WHERE id = NEW.route_id;
    UPDATE routes SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = OLD.tenant_id) WHERE id = OLD.route_id;
END;

CREATE TRIGGER route_plugins_stamp_delete AFTER DELETE ON route_plugins BEGIN
    UPDATE routes SET config_version = (SELECT config_version + 1 FROM tenants WHERE id = OLD.tenant_id) WHERE id = OLD.route_id;
END;
