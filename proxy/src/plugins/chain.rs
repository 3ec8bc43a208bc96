//! Running a route's tenant plugins in order, hook by hook (only the hooks
//! each implements): `on-request` — each sees the request with the changes
//! of the ones before it, one may answer the client; `on-response` — each
//! may change the response head or replace the response; `on-log` — after
//! the response. A failing plugin — one whose answer breaks the rules of
//! [`output`] included — is skipped (`open`) or ends the request with 503
//! `plugin_failed` (`closed`).

use std::sync::Arc;

use gatehouse_protocol::RoutePluginConfig;

use super::bindings::gatehouse::plugin::types::{
    Header, Hooks, LocalResponse, LogEntry, Request, RequestAction, Response, ResponseAction,
};
use super::output;
use super::registry::Registry;
use super::runtime::{CallContext, LoadedPlugin, PluginFailure};

/// A plugin of the chain, as failures name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    pub name: String,
    pub plugin_id: String,
}

impl PluginRef {
    fn of(plugin: &RoutePluginConfig) -> Self {
        Self {
            name: plugin.name.clone(),
            plugin_id: plugin.plugin_id.clone(),
        }
    }
}

/// What the chain decided.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Go upstream with these changes; `skipped` failed but fail open;
    /// `request` is the request as the last plugin saw it.
    Proceed {
        changes: Changes,
        skipped: Vec<(PluginRef, PluginFailure)>,
        request: Box<Request>,
    },
    /// A plugin answered the client.
    Answered(LocalResponse),
    /// A plugin that fails closed failed.
    Failed(PluginRef, PluginFailure),
}

/// Changes to the upstream request, accumulated over the chain.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub set_headers: Vec<Header>,
    pub remove_headers: Vec<String>,
    pub rewrite_path: Option<String>,
    /// Headers for the response to the client.
    pub response_headers: Vec<Header>,
}

/// Sets `header` (name lowercased) in `headers`, replacing one of the
/// same name.
pub fn set_header(headers: &mut Vec<Header>, header: Header) {
    let header = Header {
        name: header.name.to_ascii_lowercase(),
        value: header.value,
    };
    headers.retain(|h| h.name != header.name);
    headers.push(header);
}

/// Runs `plugins` on `request`, in the context `base` (tenant, consumers,
/// shared state).
pub async fn run(
    registry: &Registry,
    base: &CallContext,
    plugins: &[RoutePluginConfig],
    mut request: Request,
) -> ChainOutcome {
    let mut changes = Changes::default();
    let mut skipped = Vec::new();
    for plugin in plugins {
        let ctx = base.with_config(Arc::clone(&plugin.config_json));
        let result = match registry.get(&plugin.sha256) {
            Some(loaded) if !loaded.implements(Hooks::ON_REQUEST) => continue,
            Some(loaded) => loaded
                .on_request(&ctx, &request)
                .await
                .and_then(|action| output::check_request(&action).map(|()| action)),
            None => Err(PluginFailure::Unavailable(
                registry.refusal(&plugin.sha256).map_or_else(
                    || "not loaded on this node yet".to_owned(),
                    |why| format!("this node cannot load it: {why}"),
                ),
            )),
        };
        match result {
            Ok(RequestAction::Proceed(step)) => {
                for name in &step.remove_headers {
                    let name = name.to_ascii_lowercase();
                    request.headers.retain(|h| h.name != name);
                    changes.set_headers.retain(|h| h.name != name);
                    changes.remove_headers.push(name);
                }
                for header in step.set_headers {
                    set_header(&mut request.headers, header.clone());
                    set_header(&mut changes.set_headers, header);
                }
                for header in step.response_headers {
                    set_header(&mut changes.response_headers, header);
                }
                if let Some(path) = step.rewrite_path {
                    request.path = path.clone();
                    changes.rewrite_path = Some(path);
                }
            }
            Ok(RequestAction::Respond(response)) => return ChainOutcome::Answered(response),
            Err(failure) if plugin.failure_policy == "open" => {
                skipped.push((PluginRef::of(plugin), failure))
            }
            Err(failure) => return ChainOutcome::Failed(PluginRef::of(plugin), failure),
        }
    }
    ChainOutcome::Proceed {
        changes,
        skipped,
        request: Box::new(request),
    }
}

/// What the chain made of the upstream's response head.
#[derive(Debug, Default)]
pub struct ResponseOutcome {
    pub set_headers: Vec<Header>,
    pub remove_headers: Vec<String>,
    /// A plugin replaced the response (or one failing closed failed:
    /// `failed` says which).
    pub replace: Option<LocalResponse>,
    /// Plugins that failed, and whether they fail closed.
    pub failed: Vec<(PluginRef, PluginFailure, bool)>,
}

/// Runs the `on-response` hooks of `plugins`, in order, on `response`.
pub async fn respond(
    registry: &Registry,
    base: &CallContext,
    plugins: &[RoutePluginConfig],
    request: &Request,
    mut response: Response,
) -> ResponseOutcome {
    let mut outcome = ResponseOutcome::default();
    for (plugin, loaded, ctx) in with_hook(registry, base, plugins, Hooks::ON_RESPONSE) {
        let result = loaded
            .on_response(&ctx, request, &response)
            .await
            .and_then(|action| output::check_response(&action).map(|()| action));
        match result {
            Ok(ResponseAction::Modify(changes)) => {
                for name in changes.remove_headers {
                    let name = name.to_ascii_lowercase();
                    response.headers.retain(|h| h.name != name);
                    outcome.set_headers.retain(|h| h.name != name);
                    outcome.remove_headers.push(name);
                }
                for header in changes.set_headers {
                    set_header(&mut response.headers, header.clone());
                    set_header(&mut outcome.set_headers, header);
                }
            }
            Ok(ResponseAction::Replace(replacement)) => {
                outcome.replace = Some(replacement);
                return outcome;
            }
            Err(failure) => {
                let closed = plugin.failure_policy != "open";
                outcome
                    .failed
                    .push((PluginRef::of(plugin), failure, closed));
                if closed {
                    return outcome;
                }
            }
        }
    }
    outcome
}

/// Runs the `on-log` hooks of `plugins` with `entry`; returns the failures.
pub async fn log(
    registry: &Registry,
    base: &CallContext,
    plugins: &[RoutePluginConfig],
    entry: &LogEntry,
) -> Vec<(PluginRef, PluginFailure)> {
    let mut failed = Vec::new();
    for (plugin, loaded, ctx) in with_hook(registry, base, plugins, Hooks::ON_LOG) {
        if let Err(failure) = loaded.on_log(&ctx, entry).await {
            failed.push((PluginRef::of(plugin), failure));
        }
    }
    failed
}

/// The loaded plugins of `plugins` that implement `hook`, each with its
/// call context (a plugin not loaded yet is left out).
fn with_hook<'a>(
    registry: &'a Registry,
    base: &'a CallContext,
    plugins: &'a [RoutePluginConfig],
    hook: Hooks,
) -> impl Iterator<Item = (&'a RoutePluginConfig, Arc<LoadedPlugin>, CallContext)> + 'a {
    plugins.iter().filter_map(move |plugin| {
        let loaded = registry.get(&plugin.sha256)?;
        loaded.implements(hook).then(|| {
            let ctx = base.with_config(Arc::clone(&plugin.config_json));
            (plugin, loaded, ctx)
        })
    })
}
