//! Config as code: `gatehouse export` prints the tenant's live config as
//! YAML; `diff -f FILE` shows what making the live config the file would
//! change; `apply -f FILE` creates and updates what the file holds and
//! leaves the rest; `sync -f FILE` also deletes what the file lacks. All go
//! through `GET/PUT /api/tenants/{id}/config`: every change is one
//! transaction and one config version, checked against the digest it was
//! planned on (`If-Match`), so what is printed is what was done.

mod file;
mod render;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;
use gatehouse_control::declarative::document::{ConfigDocument, RouteItem};
use serde_json::Value;
use ureq::http::{Method, StatusCode};

use crate::client::{Answer, Api, ApiArgs, Body};
use file::ConfigFile;

/// How often `apply` and `sync` plan again when the config changed
/// between their plan and their write.
const ATTEMPTS: usize = 3;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct DiffArgs {
    /// The config file (YAML or JSON; `-` for standard input).
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Exit with 2 when applying the file would change something.
    #[arg(long)]
    exit_code: bool,
    /// Print the plan as JSON (the API's answer).
    #[arg(long)]
    json: bool,
    /// Show what `apply` would change (no deletions) instead of `sync`.
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// The config file (YAML or JSON; `-` for standard input).
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Print what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Add the API keys of the consumers this creates to this JSON file
    /// (`{"name": "ck_..."}`, made readable by its owner only). Without
    /// it, the keys are printed when standard output is a terminal, and
    /// not shown otherwise.
    #[arg(long)]
    keys_out: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

/// `gatehouse export`.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let api = Api::connect(&args.api)?;
    let answer = api.call(Method::GET, "/config", Body::None, &[])?;
    answer.ok("reading the config")?;
    let doc: ConfigDocument =
        serde_json::from_value(answer.body).context("the config the API answered")?;
    print!("{}", serde_saphyr::to_string(&doc)?);
    Ok(())
}

/// `gatehouse diff`: whether the live config differs from the file.
pub fn diff(args: DiffArgs) -> anyhow::Result<bool> {
    let file = file::read(&args.file)?;
    let api = Api::connect(&args.api)?;
    let mut plan = None;
    for _ in 0..ATTEMPTS {
        let (desired, etag) = desired(&api, &file.doc, !args.apply)?;
        plan = self::plan(&api, &desired, etag.as_deref(), &args.file)?;
        if plan.is_some() {
            break;
        }
    }
    let plan = plan.ok_or_else(changed_meanwhile)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan.body)?);
    } else {
        print!("{}", render::changes(&plan.body));
        println!("{}", render::summary(&plan.body, false));
    }
    Ok(args.exit_code && has_changes(&plan.body))
}

/// `gatehouse apply` (`prune` false) and `gatehouse sync` (`prune` true).
pub fn apply(args: ApplyArgs, prune: bool) -> anyhow::Result<()> {
    let file = file::read(&args.file)?;
    let keys_out = match &args.keys_out {
        Some(path) if !args.dry_run => Some(KeysFile::open(path)?),
        _ => None,
    };
    let api = Api::connect(&args.api)?;
    for _ in 0..ATTEMPTS {
        let (desired, etag) = desired(&api, &file.doc, prune)?;
        let Some(plan) = plan(&api, &desired, etag.as_deref(), &args.file)? else {
            continue;
        };
        if args.dry_run || !has_changes(&plan.body) {
            print!("{}", render::changes(&plan.body));
            let state = if has_changes(&plan.body) {
                "dry run, nothing changed"
            } else {
                "no changes"
            };
            println!("{} ({state})", render::summary(&plan.body, false));
            return Ok(());
        }
        upload_new_plugins(&api, &file, &plan.body)?;
        let etag = plan.body["etag"].as_str().unwrap_or_default().to_owned();
        let answer = put(&api, &desired, false, Some(&etag))?;
        if answer.status == StatusCode::PRECONDITION_FAILED {
            eprintln!("the config changed while this ran; planning again");
            continue;
        }
        answer.ok(&format!("applying {}", args.file.display()))?;
        print!("{}", render::changes(&answer.body));
        println!("{}", render::summary(&answer.body, true));
        return keys(&answer.body, keys_out.as_ref());
    }
    Err(changed_meanwhile())
}

fn changed_meanwhile() -> anyhow::Error {
    anyhow!("the config kept changing while this ran; run it again")
}

fn has_changes(answer: &Value) -> bool {
    answer["changes"].as_array().is_some_and(|c| !c.is_empty())
}

/// What a run makes the live config: the file (`prune`, as `sync`), or
/// the live config with the file's items in it (as `apply`), with the
/// digest of the live config it was made from.
fn desired(
    api: &Api,
    file: &ConfigDocument,
    prune: bool,
) -> anyhow::Result<(ConfigDocument, Option<String>)> {
    if prune {
        return Ok((file.clone(), None));
    }
    let (live, etag) = live(api)?;
    let merged = merge(live, file);
    // A live route of a deleted service, which the file does not give: it
    // cannot be kept as it is, nor deleted by `apply`.
    if let Some(orphan) = merged
        .routes
        .iter()
        .skip(file.routes.len())
        .find(|route| route.service.is_none())
    {
        anyhow::bail!(
            "the live route {} points at a deleted service: give it a service in the file \
             (or drop it with `gatehouse sync`)",
            orphan.key()
        );
    }
    Ok((merged, Some(etag)))
}

/// The live config and its digest.
fn live(api: &Api) -> anyhow::Result<(ConfigDocument, String)> {
    let answer = api.call(Method::GET, "/config", Body::None, &[])?;
    answer.ok("reading the config")?;
    let etag = answer
        .header("etag")
        .map(|tag| tag.trim_matches('"').to_owned())
        .ok_or_else(|| anyhow!("the API answered the config without an ETag"))?;
    let doc = serde_json::from_value(answer.body).context("the config the API answered")?;
    Ok((doc, etag))
}

/// The dry run of `desired`: the plan, or `None` when the config changed
/// since `etag`. Invalid items are reported against the file.
fn plan(
    api: &Api,
    desired: &ConfigDocument,
    etag: Option<&str>,
    path: &Path,
) -> anyhow::Result<Option<Answer>> {
    let answer = put(api, desired, true, etag)?;
    if answer.status == StatusCode::PRECONDITION_FAILED {
        return Ok(None);
    }
    answer.ok(&path.display().to_string())?;
    Ok(Some(answer))
}

fn put(
    api: &Api,
    desired: &ConfigDocument,
    dry_run: bool,
    etag: Option<&str>,
) -> anyhow::Result<Answer> {
    let path = if dry_run {
        "/config?dryRun=true"
    } else {
        "/config"
    };
    let body = serde_json::to_value(desired)?;
    let if_match = etag.map(|tag| format!("\"{tag}\""));
    let headers: Vec<(&str, &str)> = if_match
        .as_deref()
        .map(|tag| ("if-match", tag))
        .into_iter()
        .collect();
    api.call(Method::PUT, path, Body::Json(&body), &headers)
}

/// The live config with the file's items in place of the live ones of
/// the same key (and a route in place of the live one that matches the
/// same requests), the file's first so that errors name their place in
/// the file. Rate limits are the file's when it has them.
fn merge(live: ConfigDocument, file: &ConfigDocument) -> ConfigDocument {
    let names = |items: &mut dyn Iterator<Item = &str>| -> HashSet<String> {
        items.map(str::to_owned).collect()
    };
    let services = names(&mut file.services.iter().map(|s| s.name.as_str()));
    let consumers = names(&mut file.consumers.iter().map(|c| c.name.as_str()));
    let routes: HashSet<String> = file.routes.iter().map(RouteItem::matches).collect();
    let mut merged = file.clone();
    merged.services.extend(
        live.services
            .into_iter()
            .filter(|s| !services.contains(&s.name)),
    );
    merged.routes.extend(
        live.routes
            .into_iter()
            .filter(|r| !routes.contains(&r.matches())),
    );
    merged.consumers.extend(
        live.consumers
            .into_iter()
            .filter(|c| !consumers.contains(&c.name)),
    );
    // Tiers too: the file's in place of the live ones of the same name.
    if let (Some(limits), Some(live_limits)) = (&mut merged.rate_limits, live.rate_limits) {
        let named: HashSet<String> = limits.tiers.iter().map(|t| t.name.clone()).collect();
        limits.tiers.extend(
            live_limits
                .tiers
                .into_iter()
                .filter(|t| !named.contains(&t.name)),
        );
    }
    merged
}

/// Uploads the file's local plugins the plan says are not stored yet.
fn upload_new_plugins(api: &Api, file: &ConfigFile, plan: &Value) -> anyhow::Result<()> {
    for change in plan["changes"].as_array().into_iter().flatten() {
        if change["kind"] != "plugin" || change["action"] != "create" {
            continue;
        }
        let label = change["key"].as_str().unwrap_or_default();
        let local = file
            .local_plugins
            .iter()
            .find(|p| p.label() == label)
            .ok_or_else(|| anyhow!("the plan uploads {label}, which the file does not give"))?;
        crate::plugin::upload(api, &local.name, &local.version, &local.wasm)
            .with_context(|| format!("uploading {}", local.path.display()))?;
        println!("uploaded {label} from {}", local.path.display());
    }
    Ok(())
}

/// The `--keys-out` file, read (and its folder checked writable) before
/// anything is changed, so that keys shown only once have somewhere to go.
struct KeysFile {
    path: PathBuf,
    kept: serde_json::Map<String, Value>,
}

impl KeysFile {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let shown = path.display();
        let kept = match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => serde_json::Map::new(),
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("--keys-out {shown}: not a JSON object of keys"))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(err) => return Err(err).context(format!("--keys-out {shown}")),
        };
        // What the write will do, tried now: a temporary file beside it.
        let probe = temporary_beside(path);
        std::fs::remove_file(&probe).ok();
        write_private(&probe, "{}").with_context(|| format!("--keys-out {shown}"))?;
        std::fs::remove_file(&probe).ok();
        Ok(Self {
            path: path.to_owned(),
            kept,
        })
    }

    /// The file with `created` added, replaced whole (a crash leaves the
    /// old file or the new one, never half of one).
    fn add(&self, created: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut kept = self.kept.clone();
        for (name, key) in created {
            kept.insert((*name).to_owned(), Value::String((*key).to_owned()));
        }
        let temporary = temporary_beside(&self.path);
        std::fs::remove_file(&temporary).ok();
        write_private(&temporary, &serde_json::to_string_pretty(&kept)?)?;
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
    }
}

fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Keeps or shows the new consumers' keys, as `--keys-out` says: in the
/// file; else on a terminal; never in a log. When the file cannot be
/// written after all, the keys go to standard error (they were asked to
/// be kept, and exist nowhere else) and the run fails.
fn keys(answer: &Value, keys_out: Option<&KeysFile>) -> anyhow::Result<()> {
    let created: Vec<(&str, &str)> = answer["createdConsumers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c["apiKey"].as_str()?)))
        .collect();
    if created.is_empty() {
        return Ok(());
    }
    if let Some(file) = keys_out {
        let shown = file.path.display();
        return match file.add(&created) {
            Ok(()) => {
                println!("the keys of {} new consumers are in {shown}", created.len());
                Ok(())
            }
            Err(err) => {
                for (name, key) in &created {
                    eprintln!("key of consumer {name} (shown once): {key}");
                }
                Err(err.context(format!(
                    "the config was applied, but the new keys could not be kept in {shown}: \
                     they are above"
                )))
            }
        };
    }
    if std::io::stdout().is_terminal() {
        for (name, key) in &created {
            println!("key of consumer {name} (shown once): {key}");
        }
    } else {
        eprintln!(
            "{} consumers were created; their keys are not shown (not a terminal): \
             pass --keys-out FILE to keep new keys",
            created.len()
        );
    }
    Ok(())
}

/// Writes `text` to a new file at `path`, readable and writable by its
/// owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> ConfigDocument {
        serde_json::from_value(value).expect("a document")
    }

    #[test]
    fn apply_keeps_what_the_file_lacks() {
        let route = |method: &str, pattern: &str| json!({ "method": method, "pathPattern": pattern, "service": "a", "authRequired": false });
        let live = doc(json!({
            "services": [{ "name": "a", "targetUrl": "http://old/" }, { "name": "b", "targetUrl": "http://b/" }],
            "routes": [route("GET", "/u/:id"), route("POST", "/u")],
            "consumers": [{ "name": "c" }],
        }));
        let file = doc(json!({
            "services": [{ "name": "a", "targetUrl": "http://new/" }],
            "routes": [route("GET", "/u/:name")],
        }));
        let tiers = |tiers: Value| json!({ "tiers": tiers, "anonymousRequestsPerMinute": 5 });
        let mut live_with_tiers = live.clone();
        live_with_tiers.rate_limits = serde_json::from_value(tiers(json!([
            { "name": "free", "requestsPerMinute": 60 }, { "name": "gold", "requestsPerMinute": 900 }
        ])))
        .ok();
        let mut fewer_tiers = file.clone();
        fewer_tiers.rate_limits =
            serde_json::from_value(tiers(json!([{ "name": "free", "requestsPerMinute": 100 }])))
                .ok();
        let merged_tiers = merge(live_with_tiers, &fewer_tiers)
            .rate_limits
            .expect("tiers");
        assert_eq!(
            serde_json::to_value(&merged_tiers.tiers).expect("json"),
            json!([{ "name": "free", "requestsPerMinute": 100 }, { "name": "gold", "requestsPerMinute": 900 }]),
            "apply keeps the tiers the file lacks"
        );
        let merged = merge(live, &file);
        let services: Vec<&str> = merged
            .services
            .iter()
            .map(|s| s.target_url.as_str())
            .collect();
        assert_eq!(services, ["http://new/", "http://b/"]);
        let routes: Vec<String> = merged.routes.iter().map(RouteItem::key).collect();
        assert_eq!(routes, ["GET /u/:name", "POST /u"]);
        assert_eq!(merged.consumers.len(), 1);
        assert!(merged.rate_limits.is_none());
    }
}
