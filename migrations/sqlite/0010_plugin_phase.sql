-- When a route's tenant plugin runs: 'auth' (authenticates the request, in
-- place of the built-in key check, before the rate limit) or 'request'
-- (after the rate limit, as every plugin did before).
ALTER TABLE route_plugins ADD COLUMN phase TEXT NOT NULL DEFAULT 'request';
