-- Every reference between a tenant's rows names the tenant: a route can
-- point only at a service of its own tenant, a route's plugin entry only at
-- a route and a plugin of that same tenant. Rows that cross tenants (the API
-- never made any) make this migration fail rather than be guessed at.
ALTER TABLE services ADD CONSTRAINT services_tenant_id UNIQUE (tenant_id, id);
ALTER TABLE routes ADD CONSTRAINT routes_tenant_id UNIQUE (tenant_id, id);
ALTER TABLE plugins ADD CONSTRAINT plugins_tenant_id UNIQUE (tenant_id, id);
ALTER TABLE routes ADD CONSTRAINT routes_service_of_tenant
    FOREIGN KEY (tenant_id, service_id) REFERENCES services (tenant_id, id);
ALTER TABLE route_plugins ADD COLUMN tenant_id TEXT;
UPDATE route_plugins rp SET tenant_id = r.tenant_id FROM routes r WHERE r.id = rp.route_id;
ALTER TABLE route_plugins ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE route_plugins ADD CONSTRAINT route_plugins_route_of_tenant
    FOREIGN KEY (tenant_id, route_id) REFERENCES routes (tenant_id, id);
ALTER TABLE route_plugins ADD CONSTRAINT route_plugins_plugin_of_tenant
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES plugins (tenant_id, id);
