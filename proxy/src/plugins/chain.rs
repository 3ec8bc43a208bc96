//! Running a route's tenant plugins in order, hook by hook (only the hooks
//! each implements): `on-request` — phase by phase ([`RequestChain`]):
//! the `auth` plugins in place of the built-in key check, the `request`
//! plugins after the rate limit; each sees the request with the changes
//! of the ones before it, one may answer the client; `on-response` — each
//! may change the response head or replace the response; `on-log` — after
//! the response. A failing plugin — one whose answer breaks the rules of
//! [`output`] included — is skipped (`open`) or ends the request with 503
//! `plugin_failed` (`closed`).
//!
//! The consumer: an `auth` plugin names it with `consumer-id` (one of the
//! tenant's live consumers, looked up or verified through `consumers`);
//! from then on it is the request's, for the upstream's `X-Consumer-Id`,
//! later plugins, logs, metrics and the rate limit's tier. A plugin may not
//! name another consumer once one is named, nor name one from the
//! `request` phase: that is an invalid answer.

use std::sync::Arc;

use gatehouse_protocol::{PluginPhase, RoutePluginConfig};

use super::bindings::gatehouse::plugin::types::{
    Header, Hooks, LocalResponse, LogEntry, Request, RequestAction, RequestChanges, Response,
    ResponseAction,
};
use super::output;
use super::registry::Registry;
use super::runtime::{CallContext, LoadedPlugin, PluginFailure};
use crate::keys::{Consumer, ID_LEN};

/// A plugin of the chain, as failures name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    pub name: String,
    pub plugin_id: String,
}

impl PluginRef {
    fn of(plugin: &RoutePluginConfig) -> Self {
        Self {
            name: plugin.name.to_string(),
            plugin_id: plugin.plugin_id.clone(),
        }
    }
}

/// Why the `on-request` hooks stopped a request.
#[derive(Debug)]
pub enum Stop {
    /// A plugin answered the client.
    Answered(LocalResponse),
    /// A plugin that fails closed failed.
    Failed(PluginRef, PluginFailure),
}

/// A request on its way through its route's `on-request` hooks: the
/// request as the next plugin sees it, the changes made so far, the
/// consumer named so far, and the plugins that failed open.
#[derive(Debug)]
pub struct RequestChain {
    pub request: Request,
    pub changes: Changes,
    pub consumer: Option<Consumer>,
    pub skipped: Vec<(PluginRef, PluginFailure)>,
}

impl RequestChain {
    /// A chain starting from `request`.
    pub fn new(request: Request) -> Self {
        Self {
            request,
            changes: Changes::default(),
            consumer: None,
            skipped: Vec::new(),
        }
    }

    /// The request's consumer from now on (the built-in key check found it).
    pub fn identify(&mut self, consumer: Consumer) {
        self.request.consumer_id = Some(consumer.id.to_string());
        self.consumer = Some(consumer);
    }

    /// Runs the `on-request` hooks of the plugins of `phase`, in order.
    pub async fn run(
        &mut self,
        registry: &Registry,
        base: &CallContext,
        plugins: &[RoutePluginConfig],
        phase: PluginPhase,
    ) -> Result<(), Stop> {
        for plugin in plugins.iter().filter(|p| p.phase == phase) {
            let ctx = base.for_plugin(&plugin.name, Arc::clone(&plugin.config_json));
            let result = match registry.get(&plugin.sha256) {
                Some(loaded) if !loaded.implements(Hooks::ON_REQUEST) => continue,
                // An answer that is not well formed counts against the
                // plugin's breaker; a consumer it may not name here fails
                // this request only, as that depends on the route and the
                // request, not on the plugin alone.
                Some(loaded) => loaded
                    .on_request_checked(&ctx, &self.request, output::check_request)
                    .await
                    .and_then(|action| {
                        let named = self.named_consumer(&ctx, phase, &action)?;
                        Ok((action, named))
                    }),
                None => Err(registry.refusal(&plugin.sha256).map_or_else(
                    || PluginFailure::Unavailable("not loaded on this node yet".to_owned()),
                    PluginFailure::Refused,
                )),
            };
            match result {
                Ok((RequestAction::Proceed(step), named)) => {
                    if let Some(consumer) = named {
                        self.identify(consumer);
                    }
                    self.apply(step);
                }
                Ok((RequestAction::Respond(response), _)) => {
                    return Err(Stop::Answered(response));
                }
                Err(failure) if plugin.failure_policy == "open" => {
                    self.skipped.push((PluginRef::of(plugin), failure));
                }
                Err(failure) => return Err(Stop::Failed(PluginRef::of(plugin), failure)),
            }
        }
        Ok(())
    }

    /// The consumer `action` newly names, checked: only an `auth` plugin
    /// may name one, it must be one of the tenant's live consumers, and
    /// once named the request's consumer stays.
    fn named_consumer(
        &self,
        ctx: &CallContext,
        phase: PluginPhase,
        action: &RequestAction,
    ) -> Result<Option<Consumer>, PluginFailure> {
        let RequestAction::Proceed(step) = action else {
            return Ok(None);
        };
        let Some(named) = step.consumer_id.as_deref() else {
            return Ok(None);
        };
        let mut buffer = [0; ID_LEN];
        let current = self.consumer.as_ref().map(|c| c.id.as_str(&mut buffer));
        if current == Some(named) {
            return Ok(None);
        }
        let invalid = |why: String| Err(PluginFailure::InvalidOutput(why));
        if phase != PluginPhase::Auth {
            return invalid(format!(
                "consumer-id `{named}` from a plugin of the request phase: only a plugin \
                 attached with phase `auth` names the consumer"
            ));
        }
        if let Some(current) = current {
            return invalid(format!(
                "consumer-id `{named}` after `{current}` was named: the request's consumer stays"
            ));
        }
        match ctx.keys.as_ref().and_then(|keys| keys.by_id(named)) {
            Some(consumer) => Ok(Some(consumer)),
            None => invalid(format!(
                "consumer-id `{named}` is not one of the tenant's live consumers"
            )),
        }
    }

    /// Applies one plugin's changes to the request later plugins see and
    /// to what goes upstream.
    fn apply(&mut self, step: RequestChanges) {
        let (request, changes) = (&mut self.request, &mut self.changes);
        change_headers(
            &mut request.headers,
            (&mut changes.set_headers, &mut changes.remove_headers),
            step.remove_headers,
            step.set_headers,
        );
        for header in step.response_headers {
            set_header(&mut changes.response_headers, header);
        }
        if let Some(path) = step.rewrite_path {
            request.path = path.clone();
            changes.rewrite_path = Some(path);
        }
    }
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

/// Applies one plugin's header changes (`remove`, then `set`) to the
/// headers the next plugin sees and to those accumulated for the message
/// (`(set, removed)` so far).
fn change_headers(
    seen: &mut Vec<Header>,
    (accumulated, removed): (&mut Vec<Header>, &mut Vec<String>),
    remove: Vec<String>,
    set: Vec<Header>,
) {
    for name in remove {
        let name = name.to_ascii_lowercase();
        seen.retain(|h| h.name != name);
        accumulated.retain(|h| h.name != name);
        removed.push(name);
    }
    for header in set {
        set_header(seen, header.clone());
        set_header(accumulated, header);
    }
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
            .on_response_checked(&ctx, request, &response, output::check_response)
            .await;
        match result {
            Ok(ResponseAction::Modify(changes)) => change_headers(
                &mut response.headers,
                (&mut outcome.set_headers, &mut outcome.remove_headers),
                changes.remove_headers,
                changes.set_headers,
            ),
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
            let ctx = base.for_plugin(&plugin.name, Arc::clone(&plugin.config_json));
            (plugin, loaded, ctx)
        })
    })
}
