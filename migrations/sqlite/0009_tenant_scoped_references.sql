-- Every reference between a tenant's rows names the tenant: a route can
-- point only at a service of its own tenant, a route's plugin entry only at
-- a route and a plugin of that same tenant. Rows that cross tenants (the API
-- never made any) make this migration fail rather than be guessed at.
-- SQLite adds foreign keys only by making the table anew: route_plugins
-- (the only table referring to routes) is set aside first, so dropping the
-- old routes table leaves nothing pointing at it.
CREATE UNIQUE INDEX services_tenant_id ON services (tenant_id, id);
CREATE UNIQUE INDEX plugins_tenant_id ON plugins (tenant_id, id);

CREATE TABLE route_plugins_kept AS
    SELECT rp.route_id, rp.position, rp.plugin_id, rp.config, rp.failure_policy,
           r.tenant_id AS tenant_id
    FROM route_plugins rp JOIN routes r ON r.id = rp.route_id;
DROP TABLE route_plugins;

CREATE TABLE routes_scoped (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    method               TEXT NOT NULL,
    path_pattern         TEXT NOT NULL,
    path_shape           TEXT NOT NULL,
    service_id           TEXT NOT NULL,
    auth_required        INTEGER NOT NULL,
    rate_limit_override  INTEGER,
    enabled              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, service_id) REFERENCES services (tenant_id, id)
);
INSERT INTO routes_scoped (id, tenant_id, method, path_pattern, path_shape, service_id,
    auth_required, rate_limit_override, enabled, created_at, updated_at, deleted_at)
    SELECT id, tenant_id, method, path_pattern, path_shape, service_id,
    auth_required, rate_limit_override, enabled, created_at, updated_at, deleted_at
    FROM routes;
DROP TABLE routes;
ALTER TABLE routes_scoped RENAME TO routes;
CREATE INDEX routes_tenant ON routes (tenant_id, created_at) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX routes_live_method_path ON routes (tenant_id, method, path_shape)
    WHERE deleted_at IS NULL;

CREATE TABLE route_plugins (
    route_id        TEXT NOT NULL,
    position        INTEGER NOT NULL,
    plugin_id       TEXT NOT NULL,
    config          TEXT NOT NULL,
    failure_policy  TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    PRIMARY KEY (route_id, position),
    FOREIGN KEY (tenant_id, route_id) REFERENCES routes (tenant_id, id),
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES plugins (tenant_id, id)
);
INSERT INTO route_plugins (route_id, position, plugin_id, config, failure_policy, tenant_id)
    SELECT route_id, position, plugin_id, config, failure_policy, tenant_id FROM route_plugins_kept;
DROP TABLE route_plugins_kept;
CREATE INDEX route_plugins_plugin ON route_plugins (plugin_id);
