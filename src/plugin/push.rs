//! `gatehouse plugin push`: uploads the built component through the REST
//! API (`POST /plugins`, or the stored plugin of the same name, version
//! and bytes when there is one) and, given a route, attaches it there: in
//! place of the version of the same plugin attached there (keeping its
//! config, failure policy and phase unless flags say otherwise), or after
//! the route's plugins. The route's other plugins stay as they are, in
//! order.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use ureq::http::{Method, StatusCode};

use super::Manifest;
use gatehouse_control::secrets::sha256_hex;

use crate::client::{Api, ApiArgs, Body};

#[derive(Args)]
pub struct PushArgs {
    /// The plugin's directory (holding `gatehouse-plugin.json`).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The component to upload (default: what `build` wrote).
    #[arg(long)]
    wasm: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
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

pub fn run(args: PushArgs) -> anyhow::Result<()> {
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
    let api = Api::connect(&args.api)?;
    // The route first: a mistyped one stores nothing.
    let route = match &args.route {
        Some(id) => {
            let routes = api.list("/routes", "listing the routes")?;
            let found = routes.into_iter().find(|r| r["id"] == id.as_str());
            Some(found.ok_or_else(|| {
                anyhow!("the tenant has no route {id} (`GET /routes` lists them)")
            })?)
        }
        None => None,
    };
    let plugin_id = upload(&api, &manifest.name, &manifest.version, &wasm)?;
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
        attach(&api, &route, &plugin_id, &manifest.name, settings)?;
        let id = route["id"].as_str().unwrap_or_default();
        println!("attached to route {id}: live on the tenant's nodes as they take the change");
    }
    Ok(())
}

/// Uploads `wasm` as `name` `version`; the id of the stored plugin (the
/// one already stored under this name and version when its bytes are the
/// same; an error when they are not).
pub fn upload(api: &Api, name: &str, version: &str, wasm: &[u8]) -> anyhow::Result<String> {
    let sha256 = sha256_hex(wasm);
    let query = format!(
        "/plugins?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("name", name)
            .append_pair("version", version)
            .finish()
    );
    let answer = api.call(
        Method::POST,
        &query,
        Body::Bytes(wasm, "application/wasm"),
        &[],
    )?;
    if answer.status == StatusCode::CREATED {
        return id_of(&answer.body);
    }
    if answer.status != StatusCode::CONFLICT || answer.code() != Some("plugin_exists") {
        return Err(answer.failed("the upload was refused"));
    }
    let stored = api
        .list("/plugins", "listing the plugins")?
        .into_iter()
        .find(|p| p["name"] == name && p["version"] == version)
        .ok_or_else(|| answer.failed("the upload was refused"))?;
    if stored["sha256"] != sha256.as_str() {
        bail!(
            "version {version} of {name} is stored with other bytes: give this build another version"
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
fn attach(
    api: &Api,
    route: &Value,
    plugin_id: &str,
    name: &str,
    settings: Settings,
) -> anyhow::Result<()> {
    let id = route["id"].as_str().unwrap_or_default();
    let plugins = api.list("/plugins", "listing the plugins")?;
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
    api.call(
        Method::PATCH,
        &format!("/routes/{id}"),
        Body::Json(&body),
        &[],
    )?
    .ok(&format!("attaching to route {id}"))
}
