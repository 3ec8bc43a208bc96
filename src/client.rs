//! The REST client the command-line tools share (`plugin push`, `export`,
//! `diff`, `apply`, `sync`): the control plane's address and a tenant
//! token from flags or the environment, HTTPS verified against the
//! system's roots or a CA file, the tenant the token is for (asked of
//! `GET /api/auth/whoami`, so an opaque `gt_` automation token works as
//! well as a JWT), and the API's errors in its own words.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::Value;
use ureq::Agent;
use ureq::http::{HeaderMap, Method, StatusCode};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// The largest answer read (a whole config of 100,000 consumers fits).
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// Where the control plane is and who is calling.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The control plane's address (`http://` or `https://`).
    #[arg(long, env = "GATEHOUSE_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// A tenant token: a session JWT (signup's or login's `token`) or an
    /// automation token (`gt_...`).
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The tenant (default: the one the token is for).
    #[arg(long, env = "GATEHOUSE_TENANT")]
    pub tenant: Option<String>,
    /// PEM CAs to verify an `https://` control plane against (default: the
    /// system's roots).
    #[arg(long, env = "GATEHOUSE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// A tenant's API: `/api/tenants/{tenant}` on the control plane.
pub struct Api {
    agent: Agent,
    root: String,
    base: String,
    token: String,
}

/// An answer: its status, headers and JSON body (a body that is not JSON,
/// as a string).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// Bytes with their content type.
    Bytes(&'a [u8], &'static str),
}

impl Api {
    /// Connects to the control plane of `args` as the tenant of its token.
    pub fn connect(args: &ApiArgs) -> anyhow::Result<Self> {
        let root = args.url.trim_end_matches('/').to_owned();
        if !(root.starts_with("http://") || root.starts_with("https://")) {
            bail!("--url must start with http:// or https:// (not {root})");
        }
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(roots(args.ca_file.as_deref())?)
                    .build(),
            )
            .build();
        let mut api = Self {
            agent: config.into(),
            root,
            base: String::new(),
            token: args.token.clone(),
        };
        let tenant = match &args.tenant {
            Some(tenant) => tenant.clone(),
            None => api.whoami()?,
        };
        api.base = format!("{}/api/tenants/{tenant}", api.root);
        Ok(api)
    }

    /// The tenant the token is for.
    fn whoami(&self) -> anyhow::Result<String> {
        let url = format!("{}/api/auth/whoami", self.root);
        let answer = self.send(Method::GET, &url, Body::None, &[])?;
        answer.ok("asking whose the token is")?;
        answer.body["tenantId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the control plane did not say whose the token is"))
    }

    /// `method path` of the tenant's API (`/routes`, `/config?dryRun=true`),
    /// with the token and `headers`.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.send(method, &format!("{}{path}", self.base), body, headers)
    }

    /// `GET path`, which must answer a list (`what` says what it was for).
    pub fn list(&self, path: &str, what: &str) -> anyhow::Result<Vec<Value>> {
        let answer = self.call(Method::GET, path, Body::None, &[])?;
        answer.ok(what)?;
        Ok(answer.body.as_array().cloned().unwrap_or_default())
    }

    fn send(
        &self,
        method: Method,
        url: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {}", self.token));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let sent = match body {
            Body::None => self.agent.run(request.body(())?),
            Body::Json(value) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(value)?)?,
            ),
            Body::Bytes(bytes, content_type) => self
                .agent
                .run(request.header("content-type", content_type).body(bytes)?),
        };
        let mut response = sent.with_context(|| format!("reaching {}", self.root))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut text = String::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_string(&mut text)
            .with_context(|| format!("reading the answer of {}", self.root))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// The roots an `https://` control plane is verified against: the CA
/// file's, else the system's.
fn roots(ca_file: Option<&std::path::Path>) -> anyhow::Result<RootCerts> {
    let certs: Vec<Certificate<'static>> = match ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                bail!("--ca-file {}: no certificate in it", path.display());
            }
            certs
        }
        None => rustls_native_certs::load_native_certs()
            .context("reading the system's root certificates")?
            .into_iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect(),
    };
    Ok(RootCerts::Specific(Arc::new(certs)))
}

impl Answer {
    /// `Ok` for a 2xx; otherwise the API's own words for why not.
    pub fn ok(&self, what: &str) -> anyhow::Result<()> {
        if self.status.is_success() {
            Ok(())
        } else {
            Err(self.failed(what))
        }
    }

    /// The API's code, message and field of a failed call.
    pub fn failed(&self, what: &str) -> anyhow::Error {
        let status = self.status;
        let error = &self.body["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => match error["field"].as_str() {
                Some(field) => anyhow!("{what}: {status} {code}: {field}: {message}"),
                None => anyhow!("{what}: {status} {code}: {message}"),
            },
            _ => anyhow!("{what}: {status} {}", self.body),
        }
    }

    /// The answer's error code, if it has one.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
