//! TLS at both ends of the node: the HTTPS listener (`--tls-listen`,
//! `--tls-cert`, `--tls-key`; HTTP/1.1 and h2 by ALPN) and the trust roots
//! for https services (`--upstream-ca-file`, else the system's). pingora
//! panics on a file it cannot use, so the files are checked here first and
//! a bad one is a clear startup error naming its flag.

use std::path::Path;

use pingora::listeners::tls::TlsSettings;
use pingora::tls::{
    RootCertStore, ServerConfig, install_default_crypto_provider, load_ca_file_into_store,
    load_certs_and_key_files,
};

use crate::node::ProxyArgs;

/// The HTTPS listener to add to the proxy service.
pub struct Listener {
    pub address: String,
    pub settings: TlsSettings,
}

/// A flag and why its file cannot be used.
pub type FileError = (&'static str, String);

/// Checks the certificate, key and CA files the flags name.
pub fn check_files(args: &ProxyArgs) -> Result<(), FileError> {
    install_default_crypto_provider();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        check_cert_and_key(cert, key)?;
    }
    if let Some(ca) = &args.upstream_ca_file {
        check_ca_file(ca)?;
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

fn check_ca_file(path: &Path) -> Result<(), FileError> {
    let mut store = RootCertStore::empty();
    load_ca_file_into_store(path, &mut store)
        .map_err(|err| ("upstream-ca-file", format!("{}: {err}", path.display())))?;
    if store.is_empty() {
        return Err((
            "upstream-ca-file",
            format!("{}: no certificate in it", path.display()),
        ));
    }
    Ok(())
}

/// The HTTPS listener the flags ask for (files already checked).
pub fn listener(args: &ProxyArgs) -> pingora::Result<Option<Listener>> {
    let (Some(address), Some(cert), Some(key)) = (&args.tls_listen, &args.tls_cert, &args.tls_key)
    else {
        return Ok(None);
    };
    let mut settings = TlsSettings::intermediate(&path_str(cert), &path_str(key))?;
    settings.enable_h2();
    Ok(Some(Listener {
        address: address.clone(),
        settings,
    }))
}

/// The roots https services are verified against: `ca_file`'s CAs (checked
/// at startup), else the system's.
pub fn upstream_roots(ca_file: Option<&Path>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            if let Err(err) = load_ca_file_into_store(path, &mut roots) {
                tracing::error!(error = %err, "upstream CA file unusable");
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

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
