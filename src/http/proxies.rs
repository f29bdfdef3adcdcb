//! Trusted reverse proxies: which client address the request log records
//! when smshook runs behind a TLS-terminating proxy (as providers require).
//!
//! Behind a proxy, every connection comes from the proxy, so the request log
//! would show the proxy's address for every webhook. When the connection
//! comes from an address in `trusted_proxies`, the client is read from
//! `X-Forwarded-For` instead, walking it from the right (the hop nearest us)
//! past addresses that are themselves trusted: the first untrusted one is
//! the client. Everything left of it could have been written by the client,
//! so it is never believed. With no trusted proxies (the default) the header
//! is ignored, so no client can choose the address it is logged under.
//!
//! Only `X-Forwarded-For` is read: nginx, Caddy, HAProxy, Traefik and the
//! cloud load balancers all send it. The RFC 7239 `Forwarded` header is not.

use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use axum::http::HeaderMap;

use super::networks::Networks;

/// The proxies whose `X-Forwarded-For` is believed: addresses and networks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    /// Parses entries such as `127.0.0.1`, `::1` or `10.0.0.0/8`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        Networks::parse(entries).map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client's address: `peer`, unless `peer` is a trusted proxy and
    /// `X-Forwarded-For` names the hops before it (see the module's docs).
    /// A malformed entry stops the walk at the last address read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if self.0.is_empty() || !self.trusts(client) {
            return client;
        }
        // Several header lines form one list, in order.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for hop in hops.rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port
/// (`203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).expect("valid entries")
    }

    fn client(trusted: &[&str], peer: &str, xff: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in xff {
            headers.append("x-forwarded-for", line.parse().expect("header value"));
        }
        let peer = peer.parse().expect("peer address");
        proxies(trusted).client(peer, &headers).to_string()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(client(&[], "10.0.0.5", &["203.0.113.7"]), "10.0.0.5");
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let got = client(&["10.0.0.0/8"], "198.51.100.9", &["203.0.113.7"]);
        assert_eq!(got, "198.51.100.9");
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        assert_eq!(
            client(&["127.0.0.1"], "127.0.0.1", &["203.0.113.7"]),
            "203.0.113.7"
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_wins_over_what_the_client_wrote() {
        // The client sent "X-Forwarded-For: 1.2.3.4"; the two proxies appended.
        let got = client(
            &["10.0.0.0/8", "127.0.0.1"],
            "127.0.0.1",
            &["1.2.3.4, 203.0.113.7, 10.1.2.3"],
        );
        assert_eq!(got, "203.0.113.7");
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let got = client(&["10.0.0.0/8"], "10.0.0.1", &["1.2.3.4", "203.0.113.7"]);
        assert_eq!(got, "203.0.113.7");
    }

    #[test]
    fn a_chain_of_only_trusted_hops_gives_the_farthest() {
        let got = client(&["10.0.0.0/8"], "10.0.0.1", &["10.9.9.9, 10.0.0.2"]);
        assert_eq!(got, "10.9.9.9");
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_read() {
        assert_eq!(
            client(&["::1"], "::1", &["203.0.113.7:4711"]),
            "203.0.113.7"
        );
        assert_eq!(
            client(&["::1"], "::1", &["[2001:db8::1]:443"]),
            "2001:db8::1"
        );
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        assert_eq!(
            client(&["127.0.0.1"], "::ffff:127.0.0.1", &["203.0.113.7"]),
            "203.0.113.7"
        );
    }

    #[test]
    fn a_malformed_entry_stops_at_the_last_address_read() {
        let got = client(
            &["10.0.0.0/8"],
            "10.0.0.1",
            &["203.0.113.7, unknown, 10.0.0.2"],
        );
        assert_eq!(got, "10.0.0.2");
        assert_eq!(client(&["10.0.0.0/8"], "10.0.0.1", &[]), "10.0.0.1");
    }
}
