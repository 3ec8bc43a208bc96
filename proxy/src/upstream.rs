//! Upstream services as the forwarder needs them: where to connect, with or
//! without TLS, which path prefix to put before the request path, and how
//! long to wait.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use gatehouse_protocol::ServiceConfig;

/// A service, parsed once per config version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub id: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The target URL's path without its trailing slash ("" for none).
    pub path_prefix: String,
    pub timeout: Duration,
    pub health_check_path: Option<String>,
    /// The address resolved when the config was compiled (off the hot
    /// path); `None` when the host did not resolve, which answers 502.
    pub resolved: Option<SocketAddr>,
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
            timeout: Duration::from_millis(timeout_ms),
            health_check_path: service.health_check_path.clone(),
            resolved: None,
        })
    }

    /// Resolves the host (blocking: call it off the hot path).
    pub fn resolve(&mut self) {
        self.resolved = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next());
        if self.resolved.is_none() {
            tracing::warn!(
                service = self.id,
                host = self.host,
                "upstream host does not resolve"
            );
        }
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
        let mut up = Upstream::parse(&service("http://localhost:9000")).expect("parses");
        up.resolve();
        assert_eq!(up.resolved.map(|a| a.port()), Some(9000));
        for bad in ["ftp://x", "http://", "http://h:notaport/", "http://u@h/"] {
            assert!(Upstream::parse(&service(bad)).is_err(), "{bad}");
        }
    }
}
