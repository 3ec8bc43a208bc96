//! `gatehouse plugin push`: uploads the built component through the REST
//! API (`POST /plugins`, or the stored plugin of the same name, version
//! and bytes when there is one) and, given a route, attaches it there: in
//! place of the version of the same plugin attached there (keeping its
//! config, failure policy and phase unless flags say otherwise), or after
//! the route's plugins. The route's other plugins stay as they are, in
//! order.

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
    /// The plugin's config on the route, as JSON (default: the replaced
    /// attachment's, or `{}`).
    #[arg(long)]
    config: Option<String>,
    /// What the route does when the plugin fails: `closed` (503) or `open`
    /// (the plugin is skipped) (default: the replaced attachment's, or
    /// `closed`).
    #[arg(long)]
    failure_policy: Option<String>,
    /// `request`, or `auth` for a plugin that names the request's consumer
    /// (default: the replaced attachment's, or `request`).
    #[arg(long)]
    phase: Option<String>,
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
    /// Calls `path` of the tenant's API: the status and the body.
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

    /// `GET path`, which must succeed (`what` says what it was for).
    async fn list(&self, path: &str, what: &str) -> anyhow::Result<Vec<Value>> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(failed(what, status, &body));
        }
        Ok(body.as_array().cloned().unwrap_or_default())
    }
}

/// The answer's status and JSON body (a body that is not JSON, as text).
async fn answer(response: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
    let status = response.status();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// The API's own words for a failed call: its code, message and field.
fn failed(what: &str, status: StatusCode, body: &Value) -> anyhow::Error {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => match error["field"].as_str() {
            Some(field) => anyhow!("{what}: {status} {code}: {field} {message}"),
            None => anyhow!("{what}: {status} {code}: {message}"),
        },
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
    let config = args
        .config
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .context("--config is not JSON")?;
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
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()?,
        base: format!("{}/api/tenants/{tenant}", args.url.trim_end_matches('/')),
        token: args.token.clone(),
    };
    // The route first: a mistyped one stores nothing.
    let route = match &args.route {
        Some(id) => {
            let routes = api.list("/routes", "listing the routes").await?;
            let found = routes.into_iter().find(|r| r["id"] == id.as_str());
            Some(found.ok_or_else(|| {
                anyhow!("the tenant has no route {id} (`GET /routes` lists them)")
            })?)
        }
        None => None,
    };
    let plugin_id = upload(&api, &manifest, wasm).await?;
    println!(
        "pushed {} {} (plugin {plugin_id})",
        manifest.name, manifest.version
    );
    if let Some(route) = route {
        let settings = Settings {
            config,
            failure_policy: args.failure_policy.map(Value::String),
            phase: args.phase.map(Value::String),
        };
        attach(&api, &route, &plugin_id, &manifest.name, settings).await?;
        let id = route["id"].as_str().unwrap_or_default();
        println!("attached to route {id}: live on the tenant's nodes as they take the change");
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
    if status != StatusCode::CONFLICT || body["error"]["code"] != "plugin_exists" {
        return Err(failed("the upload was refused", status, &body));
    }
    let stored = api
        .list("/plugins", "listing the plugins")
        .await?
        .into_iter()
        .find(|p| p["name"] == manifest.name.as_str() && p["version"] == manifest.version.as_str())
        .ok_or_else(|| failed("the upload was refused", status, &body))?;
    if stored["sha256"] != sha256.as_str() {
        bail!(
            "version {} of {} is stored with other bytes: give this build another version in {}",
            manifest.version,
            manifest.name,
            super::manifest::FILE
        );
    }
    id_of(&stored)
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

/// What the flags set of an attachment; what they leave out is kept.
struct Settings {
    config: Option<Value>,
    failure_policy: Option<Value>,
    phase: Option<Value>,
}

/// An attachment as `PATCH /routes/{id}` takes it.
fn attachment(plugin_id: &Value, config: &Value, failure_policy: &Value, phase: &Value) -> Value {
    json!({ "pluginId": plugin_id, "config": config, "failurePolicy": failure_policy, "phase": phase })
}

/// Attaches `plugin_id` to `route`: in place of the one attachment of a
/// plugin named `name` (another version of it, or this one), with its
/// settings unless `settings` changes them; or after the route's plugins.
async fn attach(
    api: &Api,
    route: &Value,
    plugin_id: &str,
    name: &str,
    settings: Settings,
) -> anyhow::Result<()> {
    let id = route["id"].as_str().unwrap_or_default();
    let plugins = api.list("/plugins", "listing the plugins").await?;
    let named = |attached: &Value| {
        plugins
            .iter()
            .any(|p| p["id"] == attached["pluginId"] && p["name"] == name)
    };
    let current: Vec<&Value> = route["plugins"].as_array().into_iter().flatten().collect();
    let ours: Vec<usize> = (0..current.len()).filter(|&i| named(current[i])).collect();
    if ours.len() > 1 {
        bail!(
            "route {id} has {name} attached {} times: change it through the API (PATCH /routes/{id})",
            ours.len()
        );
    }
    let replaced = ours.first().map(|&i| current[i]);
    let pick = |flag: Option<Value>, field: &str, default: Value| {
        flag.or_else(|| replaced.map(|r| r[field].clone()).filter(|v| !v.is_null()))
            .unwrap_or(default)
    };
    let mine = attachment(
        &json!(plugin_id),
        &pick(settings.config, "config", json!({})),
        &pick(settings.failure_policy, "failurePolicy", json!("closed")),
        &pick(settings.phase, "phase", json!("request")),
    );
    let mut attachments: Vec<Value> = current
        .iter()
        .map(|a| {
            attachment(
                &a["pluginId"],
                &a["config"],
                &a["failurePolicy"],
                &a["phase"],
            )
        })
        .collect();
    match ours.first() {
        Some(&i) => attachments[i] = mine,
        None => attachments.push(mine),
    }
    let body = json!({ "plugins": attachments });
    let (status, answer) = api
        .call(Method::PATCH, &format!("/routes/{id}"), Some(body))
        .await?;
    if !status.is_success() {
        return Err(failed(&format!("attaching to route {id}"), status, &answer));
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
