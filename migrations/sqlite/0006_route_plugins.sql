-- Tenant plugins attached to routes, in the order they run, each with its
-- per-route config (JSON text) and failure policy ('closed' or 'open').
CREATE TABLE route_plugins (
    route_id        TEXT NOT NULL REFERENCES routes(id),
    position        INTEGER NOT NULL,
    plugin_id       TEXT NOT NULL REFERENCES plugins(id),
    config          TEXT NOT NULL,
    failure_policy  TEXT NOT NULL,
    PRIMARY KEY (route_id, position)
);
CREATE INDEX route_plugins_plugin ON route_plugins (plugin_id);
