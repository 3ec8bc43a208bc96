//! Upstream services as the forwarder needs them: where to connect, with or
//! without TLS, which path prefix to put before the request path, and how
//! long to wait. A host name is resolved when the config is compiled and
//! again on a timer (`background`), off the hot path; requests take its
//! addresses in turn.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;

use gatehouse_protocol::ServiceConfig;

/// How often host names are resolved again.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// The addresses a host resolved to, swapped whole when it is resolved
/// again, and which one the next request takes.
#[derive(Debug, Default)]
pub struct Addresses {
    current: ArcSwap<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Addresses {
    fn of(addresses: Vec<SocketAddr>) -> Self {
        Self {
            current: ArcSwap::from_pointee(addresses),
            next: AtomicUsize::new(0),
        }
    }

    /// The address for the next connection (each in turn); `None` when the
    /// host resolved to nothing.
    pub fn pick(&self) -> Option<SocketAddr> {
        let current = self.current.load();
        if current.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        current.get(turn % current.len()).copied()
    }

    /// Every address, in the order they resolved.
    pub fn all(&self) -> Vec<SocketAddr> {
        self.current.load().as_ref().clone()
    }

    fn replace(&self, addresses: Vec<SocketAddr>) {
        self.current.store(Arc::new(addresses));
    }
}

impl Clone for Addresses {
    fn clone(&self) -> Self {
        Self::of(self.all())
    }
}

impl PartialEq for Addresses {
    fn eq(&self, other: &Self) -> bool {
        self.all() == other.all()
    }
}

impl Eq for Addresses {}

/// A service, parsed once per config version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub id: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The target URL's path without its trailing slash ("" for none).
    pub path_prefix: String,
    /// The `Host` the upstream is sent: the host (an IPv6 literal in
    /// brackets), with the port unless it is the scheme's default. Made
    /// once; each request clones a reference to it.
    pub host_header: HeaderValue,
    pub timeout: Duration,
    pub health_check_path: Option<String>,
    /// The host's addresses (off the hot path); none when it did not
    /// resolve, which answers 502.
    pub resolved: Addresses,
}

/// Why a service's target could not be used.
#[derive(Debug, thiserror::Error)]
#[error("service {id}: unusable targetUrl `{url}`: {reason}")]
pub struct UpstreamError {
    pub id: String,
    pub url: String,
    pub reason: &'static str,
}

impl Upstream {
    /// Parses a service of the snapshot.
    pub fn parse(service: &ServiceConfig) -> Result<Self, UpstreamError> {
        let fail = |reason| UpstreamError {
            id: service.id.clone(),
            url: service.target_url.clone(),
            reason,
        };
        let (tls, rest) = if let Some(rest) = service.target_url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = service.target_url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(fail("scheme must be http or https"));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })
            .ok_or_else(|| fail("bad host or port"))?;
        let host_header = host_header(&host, port, tls).ok_or_else(|| fail("bad host or port"))?;
        let timeout_ms = u64::try_from(service.timeout_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| fail("bad timeout"))?;
        Ok(Self {
            id: service.id.clone(),
            tls,
            host,
            port,
            path_prefix: path.trim_end_matches('/').to_owned(),
            host_header,
            timeout: Duration::from_millis(timeout_ms),
            health_check_path: service.health_check_path.clone(),
            resolved: Addresses::default(),
        })
    }

    /// Resolves the host to all its addresses (blocking: call it off the
    /// hot path). A host that no longer resolves keeps the addresses it
    /// had, if any: a DNS server that is away for a moment does not take a
    /// service down.
    pub fn resolve(&self) {
        let found: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default();
        if !found.is_empty() {
            self.resolved.replace(found);
        } else if self.resolved.all().is_empty() {
            tracing::warn!(
                service = self.id,
                host = self.host,
                "upstream host does not resolve"
            );
        } else {
            tracing::warn!(
                service = self.id,
                host = self.host,
                "upstream host did not resolve again; keeping its addresses"
            );
        }
    }

    /// Whether the host is a name (an IP literal needs no resolving again).
    pub fn is_named(&self) -> bool {
        self.host.parse::<IpAddr>().is_err()
    }

    /// Sets the addresses by hand (tests, benchmarks).
    pub fn with_addresses(self, addresses: Vec<SocketAddr>) -> Self {
        self.resolved.replace(addresses);
        self
    }

    /// The path and query to send upstream: the target's path prefix, then
    /// the request's path and query.
    pub fn forward_path(&self, path_and_query: &str) -> String {
        let mut out = String::with_capacity(self.path_prefix.len() + path_and_query.len());
        out.push_str(&self.path_prefix);
        out.push_str(path_and_query);
        out
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The `Host` header naming `host:port` (see [`Upstream::host_header`]);
/// `None` when it is not printable ASCII.
fn host_header(host: &str, port: u16, tls: bool) -> Option<HeaderValue> {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let default_port = if tls { 443 } else { 80 };
    let value = if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    };
    let value = HeaderValue::try_from(value).ok()?;
    value.to_str().is_ok().then_some(value)
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_owned(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(url: &str) -> ServiceConfig {
        ServiceConfig {
            id: "s".into(),
            target_url: url.into(),
            health_check_path: None,
            timeout_ms: 1500,
        }
    }

    #[test]
    fn parses_targets_and_joins_paths() {
        let up = Upstream::parse(&service("http://127.0.0.1:8081/v1/")).expect("parses");
        assert_eq!(
            (up.tls, up.host.as_str(), up.port),
            (false, "127.0.0.1", 8081)
        );
        assert_eq!(up.forward_path("/users/1?x=2"), "/v1/users/1?x=2");
        assert_eq!(up.timeout, Duration::from_millis(1500));
        let up = Upstream::parse(&service("https://api.example.com")).expect("parses");
        assert_eq!((up.tls, up.port, up.path_prefix.as_str()), (true, 443, ""));
        assert_eq!(up.forward_path("/a"), "/a");
        let up = Upstream::parse(&service("http://[::1]:9000/p")).expect("parses");
        assert_eq!(up.address(), "[::1]:9000");
        assert_eq!(up.host_header, "[::1]:9000", "an IPv6 Host is bracketed");
        let up = Upstream::parse(&service("http://localhost:9000")).expect("parses");
        up.resolve();
        assert_eq!(up.resolved.pick().map(|a| a.port()), Some(9000));
        let hosts = [
            ("http://127.0.0.1:8081/v1/", "127.0.0.1:8081"),
            ("http://api.example.com:80", "api.example.com"),
            ("https://api.example.com", "api.example.com"),
            ("https://api.example.com:8443", "api.example.com:8443"),
            ("http://[::1]", "[::1]"),
        ];
        for (url, host) in hosts {
            let up = Upstream::parse(&service(url)).expect("parses");
            assert_eq!(up.host_header, host, "{url}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://h:notaport/",
            "http://u@h/",
            "http://h\u{e9}te/",
        ] {
            assert!(Upstream::parse(&service(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_resolve_to_every_address_taken_in_turn_and_again_later() {
        let up = Upstream::parse(&service("http://localhost:9000")).expect("parses");
        assert!(up.is_named());
        assert!(
            !Upstream::parse(&service("http://[::1]:1"))
                .expect("parses")
                .is_named()
        );
        let two = vec![
            SocketAddr::from(([10, 0, 0, 1], 9000)),
            SocketAddr::from(([10, 0, 0, 2], 9000)),
        ];
        let up = up.with_addresses(two.clone());
        let picked: Vec<_> = (0..4).filter_map(|_| up.resolved.pick()).collect();
        assert_eq!(picked, [two[0], two[1], two[0], two[1]], "each in turn");
        // Resolved again, the name's real addresses replace the old ones.
        up.resolve();
        let now = up.resolved.all();
        assert!(
            !now.is_empty() && now.iter().all(|a| a.ip().is_loopback()),
            "{now:?}"
        );
        let expected: Vec<SocketAddr> = ("localhost", 9000)
            .to_socket_addrs()
            .expect("resolves")
            .collect();
        assert_eq!(now, expected, "all of them");
        // A name that stops resolving keeps what it had.
        let gone = Upstream::parse(&service("http://no-such-host.invalid:1"))
            .expect("parses")
            .with_addresses(two.clone());
        gone.resolve();
        assert_eq!(gone.resolved.all(), two);
    }
}
