//! The echo upstream `gatehouse dev` starts beside its node, so a first
//! route has somewhere to go: it answers every request with what it
//! received, as JSON (method, path, query, headers, body).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

/// Body bytes echoed back at most.
const MAX_ECHOED_BODY: usize = 64 * 1024;

/// Binds `addr` and serves the echo there until the runtime stops.
/// Returns the address it listens on.
pub async fn start(addr: &str) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        anyhow::anyhow!(
            "the echo upstream cannot listen on {addr}: {err} \
                 (give it another address with --echo-listen, or --echo-listen off)"
        )
    })?;
    let local = listener.local_addr()?;
    let app = Router::new().fallback(echo);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the echo upstream stopped");
        }
    });
    Ok(local)
}

/// What the request was, as JSON.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let headers: BTreeMap<&str, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let shown = &body[..body.len().min(MAX_ECHOED_BODY)];
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(shown),
    }))
}
