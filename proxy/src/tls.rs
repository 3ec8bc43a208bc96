//! TLS at every end of the node: the HTTPS listener (`--tls-listen`,
//! `--tls-cert`, `--tls-key`; HTTP/1.1 and h2 by ALPN), the trust roots for
//! https services (`--upstream-ca-file`) and for a `wss://` control plane
//! (`--control-ca-file`), else the system's, and the rustls client (ring
//! only) health checks and the sync link connect with. pingora panics on a
//! file it cannot use, so the files are checked here first and a bad one is
//! a clear startup error naming its flag.

use std::path::Path;
use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::tls::{
    RootCertStore, ServerConfig, install_default_crypto_provider, load_ca_file_into_store,
    load_certs_and_key_files,
};

/// A flag and why its file cannot be used.
pub type FileError = (&'static str, String);

/// The files the TLS flags name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Files<'a> {
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub upstream_ca: Option<&'a Path>,
    pub control_ca: Option<&'a Path>,
}

/// Checks the certificate, key and CA files the flags name.
pub fn check_files(files: Files<'_>) -> Result<(), FileError> {
    install_default_crypto_provider();
    if let (Some(cert), Some(key)) = (files.cert, files.key) {
        check_cert_and_key(cert, key)?;
    }
    if let Some(ca) = files.upstream_ca {
        check_ca_file("upstream-ca-file", ca)?;
    }
    if let Some(ca) = files.control_ca {
        check_ca_file("control-ca-file", ca)?;
    }
    Ok(())
}

fn check_cert_and_key(cert: &Path, key: &Path) -> Result<(), FileError> {
    let (certs, key) = match load_certs_and_key_files(&path_str(cert), &path_str(key)) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => {
            return Err((
                "tls-cert",
                "no certificate in --tls-cert or no private key in --tls-key".to_owned(),
            ));
        }
        Err(err) => {
            return Err((
                "tls-cert",
                format!("cannot read the certificate or key: {err}"),
            ));
        }
    };
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| {
            (
                "tls-key",
                format!("the key does not fit the certificate: {err}"),
            )
        })?;
    Ok(())
}

fn check_ca_file(flag: &'static str, path: &Path) -> Result<(), FileError> {
    let mut store = RootCertStore::empty();
    load_ca_file_into_store(path, &mut store)
        .map_err(|err| (flag, format!("{}: {err}", path.display())))?;
    if store.is_empty() {
        return Err((flag, format!("{}: no certificate in it", path.display())));
    }
    Ok(())
}

/// The HTTPS listener's settings with `cert` and `key` (files already
/// checked); `None` unless both are given.
pub fn listener_settings(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> pingora::Result<Option<TlsSettings>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let mut settings = TlsSettings::intermediate(&path_str(cert), &path_str(key))?;
    settings.enable_h2();
    Ok(Some(settings))
}

/// The roots a server is verified against: `ca_file`'s CAs (checked at
/// startup), else the system's.
pub fn roots(ca_file: Option<&Path>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            if let Err(err) = load_ca_file_into_store(path, &mut roots) {
                tracing::error!(error = %err, path = %path.display(), "CA file unusable");
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs()
                .into_iter()
                .flatten()
            {
                let _ = roots.add(cert);
            }
        }
    }
    roots
}

/// A TLS client trusting `ca_file`'s CAs or the system's roots (ring only);
/// `None` when no configuration can be built, which fails its connections
/// clearly.
pub fn client_connector(ca_file: Option<&Path>) -> Option<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => Some(tokio_rustls::TlsConnector::from(Arc::new(
            builder
                .with_root_certificates(roots(ca_file))
                .with_no_client_auth(),
        ))),
        Err(err) => {
            tracing::error!(error = %err, "no TLS client configuration");
            None
        }
    }
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
