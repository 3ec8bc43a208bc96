//! `gatehouse control` flags (each with its environment variable) and their
//! start-up validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use gatehouse_protocol::trusted_proxies::TrustedProxies;
use lettre::message::Mailbox;
use rand::RngCore;

/// The shortest JWT secret accepted, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The control plane's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "control")]
pub struct ControlArgs {
    /// Address the REST API listens on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// sqlite://path (created on first start) or postgres://user@host/db.
    #[arg(
        long,
        env = "GATEHOUSE_DATABASE_URL",
        default_value = "sqlite://gatehouse-data/gatehouse.db"
    )]
    pub database_url: String,

    /// Secret that signs tenant JWTs (at least 32 bytes). Generated once and
    /// kept in the data dir when absent.
    #[arg(long, env = "GATEHOUSE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// SMTP server for outgoing mail, e.g. smtp://user:pass@host:587?tls=required.
    #[arg(long, env = "GATEHOUSE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Folder that receives mail as .eml files when no SMTP URL is set.
    #[arg(
        long,
        env = "GATEHOUSE_MAIL_OUTBOX",
        default_value = "gatehouse-data/outbox/"
    )]
    pub mail_outbox: PathBuf,

    /// Sender of outgoing mail.
    #[arg(
        long,
        env = "GATEHOUSE_MAIL_FROM",
        default_value = "Gatehouse <no-reply@gatehouse.localhost>"
    )]
    pub mail_from: String,

    /// Days request logs are kept.
    #[arg(long, env = "GATEHOUSE_LOG_RETENTION_DAYS", default_value_t = 7)]
    pub log_retention_days: u32,

    /// Days metrics and health snapshots are kept.
    #[arg(long, env = "GATEHOUSE_METRICS_RETENTION_DAYS", default_value_t = 30)]
    pub metrics_retention_days: u32,

    /// Comma-separated CIDRs of proxies in front of the control plane (load
    /// balancers) whose `X-Forwarded-For` names the client, for the login
    /// and reset throttles. None by default: the peer is the client.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// The address users reach the control plane at (its console and API),
    /// for links in mail, e.g. https://gatehouse.example.com. Default:
    /// http:// and the --listen address.
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Where to serve the control plane's own Prometheus metrics
    /// (`GET /metrics`), e.g. `127.0.0.1:9091`; none: not served.
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Folder for the control plane's own files (the generated JWT secret).
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "gatehouse-data")]
    pub data_dir: PathBuf,
}

/// A flag whose value cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub reason: String,
}

impl ControlArgs {
    /// The JWT secret: the flag's, or the one kept in the data dir (made on
    /// first start, with a warning).
    pub fn resolve_jwt_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < MIN_JWT_SECRET_BYTES {
                return Err(ConfigError {
                    flag: "jwt-secret",
                    reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
                });
            }
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir.join("jwt-secret");
        read_or_create_secret(&path).map_err(|err| ConfigError {
            flag: "data-dir",
            reason: format!("cannot keep the JWT secret in {}: {err}", path.display()),
        })
    }

    /// The public URL without a trailing slash: the flag's, checked to be an
    /// absolute http(s) URL, or the address the API is `bound` to.
    pub fn public_url(&self, bound: SocketAddr) -> Result<String, ConfigError> {
        let Some(url) = &self.public_url else {
            if bound.ip().is_unspecified() {
                tracing::warn!(
                    %bound,
                    "no --public-url: password-reset links name {bound}, which users cannot \
                     reach; set GATEHOUSE_PUBLIC_URL to the address they use"
                );
            }
            return Ok(format!("http://{bound}"));
        };
        let invalid = |reason: &str| ConfigError {
            flag: "public-url",
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|err| invalid(&format!("not a URL: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid("must be an http:// or https:// URL with a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("must not carry a query or a fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        // The console lives at the root of its origin.
        if parsed.path() != "/" {
            return Err(invalid("must be an origin, without a path"));
        }
        Ok(parsed.as_str().trim_end_matches('/').to_owned())
    }

    /// The sender mailbox.
    pub fn mail_from(&self) -> Result<Mailbox, ConfigError> {
        self.mail_from.parse().map_err(|err| ConfigError {
            flag: "mail-from",
            reason: format!("not a mailbox: {err}"),
        })
    }
}

fn read_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= MIN_JWT_SECRET_BYTES => {
            return Ok(text.trim().as_bytes().to_vec());
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "stored JWT secret is too short; replacing it")
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, secret.as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "no --jwt-secret given: generated one and kept it in the data dir; \
         set GATEHOUSE_JWT_SECRET in production and share it between replicas"
    );
    Ok(secret.into_bytes())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ControlArgs {
        let mut argv = vec!["control"];
        argv.extend_from_slice(extra);
        ControlArgs::try_parse_from(argv).expect("parses")
    }

    #[test]
    fn short_secrets_are_refused_naming_the_flag() {
        let err = args(&["--jwt-secret", "short"])
            .resolve_jwt_secret()
            .expect_err("too short");
        assert!(err.to_string().starts_with("--jwt-secret:"), "{err}");
    }

    #[test]
    fn the_public_url_defaults_to_the_listen_address() {
        let bound: SocketAddr = "127.0.0.1:3001".parse().expect("addr");
        assert_eq!(
            args(&[]).public_url(bound).expect("default"),
            "http://127.0.0.1:3001"
        );
        assert_eq!(
            args(&["--public-url", "https://gw.example.com/"])
                .public_url(bound)
                .expect("valid"),
            "https://gw.example.com"
        );
        for bad in [
            "gw.example.com",
            "ftp://gw.example.com",
            "https://gw.example.com/?a=1",
            "https://gw.example.com/console",
            "https://user:pw@gw.example.com",
        ] {
            let err = args(&["--public-url", bad])
                .public_url(bound)
                .expect_err(bad);
            assert!(err.to_string().starts_with("--public-url:"), "{err}");
        }
    }

    #[test]
    fn a_generated_secret_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("gh-secret-{}", uuid::Uuid::new_v4()));
        let a = args(&["--data-dir", dir.to_str().expect("utf-8")]);
        let first = a.resolve_jwt_secret().expect("generated");
        let second = a.resolve_jwt_secret().expect("read back");
        assert_eq!(first, second);
        assert!(first.len() >= MIN_JWT_SECRET_BYTES);
        std::fs::remove_dir_all(dir).ok();
    }
}
