//! `gatehouse plugin push`: uploads the built component through the REST
//! API (`POST /plugins`, or the stored plugin of the same name, version
//! and bytes when there is one) and, given a route, attaches it there with
//! its config, failure policy and phase, in place of any version of the
//! same plugin already attached (the route's other plugins stay as they
//! are, in order).

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Manifest;

#[derive(Args)]
pub struct PushArgs {
    /// The plugin's directory (holding `gatehouse-plugin.json`).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The component to upload (default: what `build` wrote).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// The control plane's address (plain HTTP).
    #[arg(long, env = "GATEHOUSE_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// A tenant token (the `token` of signup or login).
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    token: String,
    /// The tenant (default: the one the token is for).
    #[arg(long, env = "GATEHOUSE_TENANT")]
    tenant: Option<String>,
    /// The route to attach the plugin to (none: upload only).
    #[arg(long)]
    route: Option<String>,
    /// The plugin's config on the route, as JSON.
    #[arg(long, default_value = "{}")]
    config: String,
    /// What the route does when the plugin fails: `closed` (503) or `open`
    /// (the plugin is skipped).
    #[arg(long, default_value = "closed")]
    failure_policy: String,
    /// `request`, or `auth` for a plugin that names the request's consumer.
    #[arg(long, default_value = "request")]
    phase: String,
}

/// The tenant a tenant token is for (its `sub`), read without checking the
/// signature: the control plane checks it on every call.
fn tenant_of(token: &str) -> anyhow::Result<String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("the token is not a tenant token (a JWT); pass --tenant"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the token's payload is not base64url; pass --tenant")?;
    let claims: Value =
        serde_json::from_slice(&bytes).context("the token's payload is not JSON")?;
    claims["sub"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the token names no tenant; pass --tenant"))
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Calls `path` of the tenant's API; the JSON answer, or the API's error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(
            request
                .send()
                .await
                .with_context(|| format!("reaching {}", self.base))?,
        )
        .await
    }
}

async fn answer(response: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
    let status = response.status();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((status, body))
}

/// The API's own words for a failed call.
fn failed(what: &str, status: StatusCode, body: &Value) -> anyhow::Error {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => anyhow!("{what}: {status} {code}: {message}"),
        _ => anyhow!("{what}: {status} {body}"),
    }
}

pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    let manifest = Manifest::read(&args.dir)?;
    let wasm_path = args
        .wasm
        .clone()
        .unwrap_or_else(|| manifest.component_path(&args.dir));
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        format!(
            "reading {} (run `gatehouse plugin build` first)",
            wasm_path.display()
        )
    })?;
    let config: Value = serde_json::from_str(&args.config).context("--config is not JSON")?;
    let tenant = match &args.tenant {
        Some(tenant) => tenant.clone(),
        None => tenant_of(&args.token)?,
    };
    if !args.url.starts_with("http://") {
        bail!(
            "--url must be an http:// address: `push` does not speak HTTPS yet \
             (reach the control plane through a local tunnel or port-forward)"
        );
    }
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("{}/api/tenants/{tenant}", args.url.trim_end_matches('/')),
        token: args.token.clone(),
    };
    let plugin_id = upload(&api, &manifest, wasm).await?;
    println!(
        "pushed {} {} (plugin {plugin_id})",
        manifest.name, manifest.version
    );
    if let Some(route) = &args.route {
        attach(&api, route, &plugin_id, &manifest.name, &args, config).await?;
        println!("attached to route {route}: live on the tenant's nodes as they take the change");
    }
    Ok(())
}

/// Uploads `wasm`; the id of the stored plugin (the one already stored
/// under this name and version when its bytes are the same).
async fn upload(api: &Api, manifest: &Manifest, wasm: Vec<u8>) -> anyhow::Result<String> {
    let sha256 = hex(&Sha256::digest(&wasm));
    let mut url = reqwest::Url::parse(&format!("{}/plugins", api.base))
        .with_context(|| format!("{} is not a URL", api.base))?;
    url.query_pairs_mut()
        .append_pair("name", &manifest.name)
        .append_pair("version", &manifest.version);
    let response = api
        .http
        .post(url)
        .bearer_auth(&api.token)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .with_context(|| format!("reaching {}", api.base))?;
    let (status, body) = answer(response).await?;
    if status == StatusCode::CREATED {
        return id_of(&body);
    }
    if status != StatusCode::CONFLICT {
        return Err(failed("the upload was refused", status, &body));
    }
    let (status, list) = api.call(Method::GET, "/plugins", None).await?;
    if !status.is_success() {
        return Err(failed("listing the plugins", status, &list));
    }
    let stored = list
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == manifest.name.as_str() && p["version"] == manifest.version.as_str())
        .ok_or_else(|| failed("the upload was refused", StatusCode::CONFLICT, &body))?;
    if stored["sha256"] != sha256.as_str() {
        bail!(
            "version {} of {} is stored with other bytes: give this build another version in {}",
            manifest.version,
            manifest.name,
            super::manifest::FILE
        );
    }
    id_of(stored)
}

fn id_of(plugin: &Value) -> anyhow::Result<String> {
    plugin["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the API answered no plugin id: {plugin}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Attaches `plugin_id` to `route`, replacing any attachment of a plugin
/// named `name` (another version of it) where it was.
async fn attach(
    api: &Api,
    route: &str,
    plugin_id: &str,
    name: &str,
    args: &PushArgs,
    config: Value,
) -> anyhow::Result<()> {
    let (status, routes) = api.call(Method::GET, "/routes", None).await?;
    if !status.is_success() {
        return Err(failed("listing the routes", status, &routes));
    }
    let current = routes
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["id"] == route)
        .ok_or_else(|| anyhow!("the tenant has no route {route} (`GET /routes` lists them)"))?;
    let (status, plugins) = api.call(Method::GET, "/plugins", None).await?;
    if !status.is_success() {
        return Err(failed("listing the plugins", status, &plugins));
    }
    let same_plugin = |id: &Value| {
        plugins
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["id"] == *id && p["name"] == name)
    };
    let ours = json!({
        "pluginId": plugin_id,
        "config": config,
        "failurePolicy": args.failure_policy,
        "phase": args.phase,
    });
    let mut attachments = Vec::new();
    let mut placed = false;
    for attachment in current["plugins"].as_array().into_iter().flatten() {
        if same_plugin(&attachment["pluginId"]) {
            if !placed {
                attachments.push(ours.clone());
                placed = true;
            }
        } else {
            attachments.push(json!({
                "pluginId": attachment["pluginId"],
                "config": attachment["config"],
                "failurePolicy": attachment["failurePolicy"],
                "phase": attachment["phase"],
            }));
        }
    }
    if !placed {
        attachments.push(ours);
    }
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/routes/{route}"),
            Some(json!({ "plugins": attachments })),
        )
        .await?;
    if !status.is_success() {
        return Err(failed(
            &format!("attaching to route {route}"),
            status,
            &body,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_read_from_the_token() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"t-1","exp":1}"#);
        assert_eq!(tenant_of(&format!("h.{claims}.s")).expect("tenant"), "t-1");
        assert!(tenant_of("gt_opaque").is_err());
    }
}
