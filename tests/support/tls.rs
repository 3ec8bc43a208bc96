//! TLS for the end-to-end tests: a private CA and the certificates it
//! signs (written as PEM files for the binary's flags), an HTTPS test
//! upstream, and a small HTTPS client that reports the negotiated ALPN.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Upstream, serve_upstream};

/// A certificate authority of the test's own, its certificate in `ca_pem`.
pub struct Pki {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
    pub ca_pem: PathBuf,
}

/// A certificate for `localhost` and 127.0.0.1 and its key, as files and
/// as rustls values.
pub struct Leaf {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    /// A new CA named `name`, its certificate written to `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, cert.pem()).expect("CA file");
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            issuer: Issuer::new(params, key),
            ca: cert.der().clone(),
            ca_pem,
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1, signed by this CA.
    pub fn leaf(&self, label: &str) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let stem = self.dir.join(format!("{}-{label}", self.name));
        let cert_pem = stem.with_extension("crt");
        let key_pem = stem.with_extension("key");
        std::fs::write(&cert_pem, cert.pem()).expect("cert file");
        std::fs::write(&key_pem, key.serialize_pem()).expect("key file");
        Leaf {
            cert_pem,
            key_pem,
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// A client trusting only this CA, offering `alpn` protocols.
    pub fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

/// A TCP listener that completes the TLS handshake before handing a
/// connection to axum (handshakes that fail are dropped).
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Leaf {
    /// A rustls server presenting this certificate.
    fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .expect("server config");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// The test upstream over HTTPS with `leaf`, at `https://localhost:<port>`.
pub async fn https_upstream(leaf: &Leaf) -> Upstream {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let listener = TlsListener {
        tcp,
        acceptor: leaf.acceptor(),
    };
    serve_upstream(listener, format!("https://localhost:{port}"))
}

/// A TLS-terminating front for `backend`, as a load balancer in front of
/// the control plane is: `https://localhost:<port>` (the port returned)
/// with `leaf`, each connection relayed as plain TCP.
pub async fn tls_front(leaf: &Leaf, backend: SocketAddr) -> u16 {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let acceptor = leaf.acceptor();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tcp.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                tokio::io::copy_bidirectional(&mut tls, &mut plain)
                    .await
                    .ok();
            });
        }
    });
    port
}

/// An answer read over HTTPS.
#[derive(Debug)]
pub struct HttpsReply {
    pub status: u16,
    pub body: String,
}

/// Opens a TLS connection to `addr` as `localhost`; the ALPN protocol the
/// server chose, or the handshake's error.
pub async fn handshake(
    client: &TlsConnector,
    addr: &str,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let tls = client.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    Ok((tls, alpn))
}

/// `GET path` over HTTP/1.1 and TLS to `addr` (connection closed after).
pub async fn https_get(
    client: &TlsConnector,
    addr: &str,
    path: &str,
) -> Result<HttpsReply, String> {
    let (mut tls, _) = handshake(client, addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    // A peer closing without close_notify still leaves the answer read.
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("no answer: {text:?}"))?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad status line: {head:?}"))?;
    Ok(HttpsReply {
        status,
        body: body.to_owned(),
    })
}
