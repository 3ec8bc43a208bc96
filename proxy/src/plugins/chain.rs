//! Running a route's tenant plugins in order: each sees the request with the
//! changes of the ones before it; one may answer the client; a failing one
//! is skipped (`open`) or ends the request with 503 (`closed`).

use std::sync::Arc;

use gatehouse_protocol::RoutePluginConfig;

use super::bindings::gatehouse::plugin::types::{Header, LocalResponse, Request, RequestAction};
use super::host::SharedState;
use super::registry::Registry;
use super::runtime::{CallContext, PluginFailure};
use crate::keys::KeyIndex;

/// What the chain decided.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Go upstream with these changes; `skipped` failed but fail open.
    Proceed {
        changes: Changes,
        skipped: Vec<(String, PluginFailure)>,
    },
    /// A plugin answered the client.
    Answered(LocalResponse),
    /// A plugin that fails closed failed.
    Failed(String, PluginFailure),
}

/// Changes to the upstream request, accumulated over the chain.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub set_headers: Vec<Header>,
    pub remove_headers: Vec<String>,
    pub rewrite_path: Option<String>,
}

/// Runs `plugins` on `request`.
pub fn run(
    registry: &Registry,
    keys: &Arc<KeyIndex>,
    shared: &SharedState,
    plugins: &[RoutePluginConfig],
    mut request: Request,
) -> ChainOutcome {
    let mut changes = Changes::default();
    let mut skipped = Vec::new();
    for plugin in plugins {
        let ctx = CallContext {
            config_json: plugin.config_json.clone(),
            keys: Some(Arc::clone(keys)),
            shared: shared.clone(),
        };
        let result = match registry.get(&plugin.sha256) {
            Some(loaded) => loaded.on_request(&ctx, &request),
            None => Err(PluginFailure::Unavailable(
                "not loaded on this node yet".to_owned(),
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
                    let header = Header {
                        name: header.name.to_ascii_lowercase(),
                        value: header.value,
                    };
                    request.headers.retain(|h| h.name != header.name);
                    changes.set_headers.retain(|h| h.name != header.name);
                    request.headers.push(header.clone());
                    changes.set_headers.push(header);
                }
                if let Some(path) = step.rewrite_path.filter(|p| p.starts_with('/')) {
                    request.path = path.clone();
                    changes.rewrite_path = Some(path);
                }
            }
            Ok(RequestAction::Respond(response)) => return ChainOutcome::Answered(response),
            Err(failure) if plugin.failure_policy == "open" => {
                skipped.push((plugin.name.clone(), failure))
            }
            Err(failure) => return ChainOutcome::Failed(plugin.name.clone(), failure),
        }
    }
    ChainOutcome::Proceed { changes, skipped }
}
