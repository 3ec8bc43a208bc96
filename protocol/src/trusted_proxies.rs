//! Which peers may say who the client is: `--trusted-proxies`, a list of
//! CIDRs (a load balancer's addresses). A request from a trusted peer has
//! its client read from `X-Forwarded-For`, right to left, past every
//! trusted hop; from any other peer the header is the client's own claim
//! and the socket's address is the client. Both binaries decide so: the
//! control plane for its login and reset throttles, a node for its logs,
//! plugins and anonymous rate limits.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The trusted proxies' networks (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A list entry that is not a CIDR or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address")]
pub struct BadCidr(pub String);

impl FromStr for TrustedProxies {
    type Err = BadCidr;

    /// Comma-separated CIDRs; a bare address is a /32 (or /128).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| BadCidr(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` with these
    /// `X-Forwarded-For` header lines, in the order they came (a proxy may
    /// append a line of its own instead of extending the last: all of them
    /// are read, as one list).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.rev().flat_map(|line| line.rsplit(',')) {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // Past what a trusted hop wrote, nothing can be believed.
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn lists_parse_and_bad_entries_are_named() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.168.1.7,fd00::/8".parse().expect("parses");
        assert!(trusted.trusts(ip("10.1.2.3")));
        assert!(trusted.trusts(ip("192.168.1.7")));
        assert!(!trusted.trusts(ip("192.168.1.8")));
        assert!(trusted.trusts(ip("fd00::1")));
        assert!(trusted.trusts(ip("::ffff:10.0.0.1")), "v4-mapped");
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        assert_eq!(
            "10.0.0.0/8,nope".parse::<TrustedProxies>(),
            Err(BadCidr("nope".into()))
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().expect("parses");
        let lb = ip("10.0.0.5");
        let one = |line: &'static str| [line].into_iter();
        assert_eq!(trusted.client_ip(lb, one("203.0.113.9")), ip("203.0.113.9"));
        // The client forged the left part; the load balancer appended the truth.
        assert_eq!(
            trusted.client_ip(lb, one("1.1.1.1, 203.0.113.9, 10.0.0.6")),
            ip("203.0.113.9")
        );
        // The same, the load balancer adding a header line of its own.
        assert_eq!(
            trusted.client_ip(lb, ["1.1.1.1", "203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(trusted.client_ip(lb, std::iter::empty()), lb);
        assert_eq!(trusted.client_ip(lb, one("garbage")), lb);
        assert_eq!(
            trusted.client_ip(lb, one("10.0.0.7")),
            ip("10.0.0.7"),
            "all trusted"
        );
        // An untrusted peer's header is ignored.
        let direct = ip("198.51.100.4");
        assert_eq!(trusted.client_ip(direct, one("10.0.0.1")), direct);
        assert_eq!(
            TrustedProxies::default().client_ip(lb, one("203.0.113.9")),
            lb,
            "nothing trusted by default"
        );
    }
}
