-- Every change of a tenant's routes, services or consumers bumps its config version.
ALTER TABLE tenants ADD COLUMN config_version BIGINT NOT NULL DEFAULT 0;
