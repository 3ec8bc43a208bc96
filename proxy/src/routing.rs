//! The route table: method + path → route. Built once per config version,
//! off the hot path, from matchit routers (one per method, one for `ANY`).
//!
//! Priorities (DESIGN.md): an exact segment beats a parameter, which beats a
//! wildcard; on equal paths a route's own method beats `ANY`. `HEAD` falls
//! back to `GET` routes. A final `*` also matches the bare prefix
//! (`/static/*` matches `/static` and `/static/`). Disabled routes are left
//! out, so they answer 404 like unknown paths.
//!
//! matchit refuses some overlaps that are legal here (`/a/:x` beside
//! `/a/*`), so each method keeps a stack of routers: a route goes into the
//! first layer that takes it, a lookup asks every layer and keeps the most
//! specific match. Real configs need one or two layers.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_protocol::{RateLimits, RouteConfig, RoutePattern, RoutePluginConfig, Segment};

/// A route as the hot path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Shared: every request's log record and metrics carry it.
    pub id: Arc<str>,
    pub method: String,
    pub path_pattern: String,
    pub service_id: Arc<str>,
    pub auth_required: bool,
    pub rate_limit_override: Option<i64>,
    /// The `rate-limit` plugin's config here; `None`: no limit applies.
    pub rate_limit: Option<Arc<str>>,
    /// Tenant plugins, in order.
    pub plugins: Vec<RoutePluginConfig>,
    /// Per segment: 0 exact, 1 parameter, 2 wildcard. Lower sorts first.
    rank: Vec<u8>,
}

/// Why a route could not be put in the table.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("route {id}: invalid pattern: {source}")]
    Pattern {
        id: String,
        source: gatehouse_protocol::PatternError,
    },
    #[error("route {id}: {source}")]
    Insert {
        id: String,
        source: matchit::InsertError,
    },
}

/// Routes by method and path.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_method: HashMap<String, Layers>,
    any: Layers,
    len: usize,
}

/// matchit routers, each holding routes that do not conflict in matchit's
/// terms.
#[derive(Debug, Default)]
struct Layers(Vec<matchit::Router<Arc<Route>>>);

impl Layers {
    fn insert(&mut self, path: String, route: &Arc<Route>) -> Result<(), matchit::InsertError> {
        for layer in &mut self.0 {
            match layer.insert(path.clone(), Arc::clone(route)) {
                Ok(()) => return Ok(()),
                Err(matchit::InsertError::Conflict { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        let mut layer = matchit::Router::new();
        layer.insert(path, Arc::clone(route))?;
        self.0.push(layer);
        Ok(())
    }

    /// The most specific route matching `path`.
    fn best(&self, path: &str) -> Option<&Arc<Route>> {
        let mut best: Option<&Arc<Route>> = None;
        for layer in &self.0 {
            if let Ok(matched) = layer.at(path)
                && best.is_none_or(|b| matched.value.rank < b.rank)
            {
                best = Some(matched.value);
            }
        }
        best
    }
}

impl RouteTable {
    /// Builds the table from the enabled routes of a snapshot. A route that
    /// cannot be served (which the control plane's validation prevents) is
    /// left out and reported; the others are served.
    pub fn build(routes: &[RouteConfig], limits: &RateLimits) -> (Self, Vec<RouteError>) {
        let mut table = Self::default();
        let mut aliases = Vec::new();
        let mut errors = Vec::new();
        for config in routes.iter().filter(|r| r.enabled) {
            let pattern = match RoutePattern::parse(&config.path_pattern) {
                Ok(pattern) => pattern,
                Err(source) => {
                    errors.push(RouteError::Pattern {
                        id: config.id.clone(),
                        source,
                    });
                    continue;
                }
            };
            let route = Arc::new(Route {
                id: Arc::from(config.id.as_str()),
                method: config.method.clone(),
                path_pattern: config.path_pattern.clone(),
                service_id: Arc::from(config.service_id.as_str()),
                auth_required: config.auth_required,
                rate_limit_override: config.rate_limit_override,
                rate_limit: crate::ratelimit::route_settings(config, limits).map(Arc::from),
                plugins: config.plugins.clone(),
                rank: rank(&pattern),
            });
            let layers = table.layers_mut(&config.method);
            if let Err(source) = layers.insert(matchit_path(&pattern), &route) {
                errors.push(RouteError::Insert {
                    id: config.id.clone(),
                    source,
                });
                continue;
            }
            if let Some(prefix) = wildcard_prefix(&pattern) {
                aliases.push((config.method.clone(), prefix, route));
            }
            table.len += 1;
        }
        // `/static/*` also serves `/static` and `/static/`; a route naming
        // those paths itself is more specific and wins.
        for (method, prefix, route) in aliases {
            let layers = table.layers_mut(&method);
            let bare = prefix.trim_end_matches('/').to_owned();
            for path in [prefix, bare] {
                if !path.is_empty() {
                    // These paths were already accepted in wildcard form.
                    let _ = layers.insert(path, &route);
                }
            }
        }
        (table, errors)
    }

    fn layers_mut(&mut self, method: &str) -> &mut Layers {
        if method == "ANY" {
            &mut self.any
        } else {
            self.by_method.entry(method.to_owned()).or_default()
        }
    }

    /// How many routes the table serves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table serves no route.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The route for a request, if any.
    pub fn lookup(&self, method: &str, path: &str) -> Option<&Arc<Route>> {
        let own = self
            .by_method
            .get(method)
            .and_then(|layers| layers.best(path))
            .or_else(|| {
                (method == "HEAD")
                    .then(|| self.by_method.get("GET"))
                    .flatten()
                    .and_then(|layers| layers.best(path))
            });
        let any = self.any.best(path);
        match (own, any) {
            (Some(own), Some(any)) => Some(if any.rank < own.rank { any } else { own }),
            (own, any) => own.or(any),
        }
    }
}

fn rank(pattern: &RoutePattern) -> Vec<u8> {
    pattern
        .segments()
        .iter()
        .map(|segment| match segment {
            Segment::Exact(_) => 0,
            Segment::Param(_) => 1,
            Segment::Wildcard => 2,
        })
        .collect()
}

/// The pattern in matchit's syntax: `{name}`, `{*rest}`, braces escaped.
fn matchit_path(pattern: &RoutePattern) -> String {
    let mut out = String::new();
    for segment in pattern.segments() {
        out.push('/');
        match segment {
            Segment::Exact(text) => out.push_str(&text.replace('{', "{{").replace('}', "}}")),
            Segment::Param(name) => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
            Segment::Wildcard => out.push_str("{*rest}"),
        }
    }
    if pattern.has_trailing_slash() || pattern.segments().is_empty() {
        out.push('/');
    }
    out
}

/// For a pattern ending in `*`: the prefix with its slash (`/static/`).
fn wildcard_prefix(pattern: &RoutePattern) -> Option<String> {
    matches!(pattern.segments().last(), Some(Segment::Wildcard)).then(|| {
        let path = matchit_path(pattern);
        path.trim_end_matches("{*rest}").to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, method: &str, pattern: &str) -> RouteConfig {
        RouteConfig {
            id: id.into(),
            method: method.into(),
            path_pattern: pattern.into(),
            service_id: "s".into(),
            auth_required: false,
            rate_limit_override: None,
            enabled: true,
            plugins: vec![],
        }
    }

    fn build(routes: &[RouteConfig]) -> RouteTable {
        let (table, errors) = RouteTable::build(routes, &RateLimits::default());
        assert!(errors.is_empty(), "{errors:?}");
        table
    }

    fn hit(table: &RouteTable, method: &str, path: &str) -> Option<String> {
        table.lookup(method, path).map(|r| r.id.to_string())
    }

    #[test]
    fn exact_beats_param_beats_wildcard() {
        let table = build(&[
            route("wild", "GET", "/users/*"),
            route("param", "GET", "/users/:id"),
            route("exact", "GET", "/users/me"),
        ]);
        assert_eq!(hit(&table, "GET", "/users/me").as_deref(), Some("exact"));
        assert_eq!(hit(&table, "GET", "/users/42").as_deref(), Some("param"));
        assert_eq!(
            hit(&table, "GET", "/users/42/posts").as_deref(),
            Some("wild")
        );
        assert_eq!(
            hit(&table, "GET", "/users").as_deref(),
            Some("wild"),
            "bare prefix"
        );
        assert_eq!(hit(&table, "GET", "/users/").as_deref(), Some("wild"));
        assert_eq!(hit(&table, "GET", "/orders"), None);
    }

    #[test]
    fn a_method_beats_any_on_equal_paths_but_not_a_more_specific_any() {
        let table = build(&[
            route("any-exact", "ANY", "/a/b"),
            route("get-param", "GET", "/a/:x"),
            route("any-param", "ANY", "/c/:x"),
            route("get-param-c", "GET", "/c/:y"),
        ]);
        assert_eq!(hit(&table, "GET", "/a/b").as_deref(), Some("any-exact"));
        assert_eq!(hit(&table, "GET", "/a/z").as_deref(), Some("get-param"));
        assert_eq!(hit(&table, "POST", "/a/z"), None);
        assert_eq!(hit(&table, "GET", "/c/1").as_deref(), Some("get-param-c"));
        assert_eq!(hit(&table, "DELETE", "/c/1").as_deref(), Some("any-param"));
    }

    #[test]
    fn head_falls_back_to_get_and_disabled_routes_are_absent() {
        let mut off = route("off", "GET", "/off");
        off.enabled = false;
        let table = build(&[route("get", "GET", "/x"), off]);
        assert_eq!(hit(&table, "HEAD", "/x").as_deref(), Some("get"));
        assert_eq!(hit(&table, "GET", "/off"), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn params_root_braces_and_trailing_slashes() {
        let table = build(&[
            route("root", "GET", "/"),
            route("nested", "GET", "/orgs/:org/repos/:repo"),
            route("brace", "GET", "/literal{x}"),
            route("slash", "GET", "/dir/"),
        ]);
        assert_eq!(hit(&table, "GET", "/").as_deref(), Some("root"));
        assert_eq!(
            hit(&table, "GET", "/orgs/a/repos/b").as_deref(),
            Some("nested")
        );
        assert_eq!(hit(&table, "GET", "/orgs/a/repos"), None);
        assert_eq!(hit(&table, "GET", "/literal{x}").as_deref(), Some("brace"));
        assert_eq!(hit(&table, "GET", "/dir/").as_deref(), Some("slash"));
        assert_eq!(hit(&table, "GET", "/dir"), None);
    }

    #[test]
    fn overlaps_matchit_refuses_in_one_router_still_work() {
        let table = build(&[
            route("wild", "GET", "/a/*"),
            route("param-wild", "GET", "/a/:x/*"),
            route("param-b", "GET", "/a/:x/b"),
            route("other-name", "GET", "/a/:y/c"),
        ]);
        assert_eq!(hit(&table, "GET", "/a/1/b").as_deref(), Some("param-b"));
        assert_eq!(hit(&table, "GET", "/a/1/c").as_deref(), Some("other-name"));
        assert_eq!(
            hit(&table, "GET", "/a/1/d/e").as_deref(),
            Some("param-wild")
        );
        assert_eq!(
            hit(&table, "GET", "/a/1").as_deref(),
            Some("param-wild"),
            "bare prefix of /a/:x/*"
        );
        assert_eq!(hit(&table, "GET", "/a").as_deref(), Some("wild"));
    }

    #[test]
    fn unservable_routes_are_reported_and_skipped() {
        let (table, errors) = RouteTable::build(
            &[route("ok", "GET", "/a"), route("bad", "GET", "no-slash")],
            &RateLimits::default(),
        );
        assert_eq!(table.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("bad"));
    }
}
