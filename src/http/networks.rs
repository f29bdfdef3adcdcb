//! IP addresses and networks as the configuration writes them
//! (`10.0.0.0/8`, `::1`, `52.89.214.238`): the trusted proxies, and the
//! addresses a source accepts webhooks from.

use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses entries such as `127.0.0.1`, `::1` or `10.0.0.0/8`; an entry
    /// that is neither an address nor a network is named in the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| {
                        format!("{e:?} is not an IP address or network such as 10.0.0.0/8")
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the addresses or in one of the networks. An
    /// IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack
    /// listener sees IPv4 peers) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::fmt::Display for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nets: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&nets.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        let parsed = Networks::parse(&["10.0.0.0/8", "::1", " 192.168.1.1 "]).expect("valid");
        assert_eq!(parsed.to_string(), "10.0.0.0/8, ::1/128, 192.168.1.1/32");
        let e = Networks::parse(&["10.0.0.0/33"]).expect_err("bad prefix");
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        assert!(Networks::parse(&["proxy.internal"]).is_err());
    }

    #[test]
    fn membership_by_address_and_network() {
        let nets = Networks::parse(&["10.0.0.0/8", "52.89.214.238", "2001:db8::/32"]).expect("ok");
        assert!(nets.contains(ip("10.200.1.2")));
        assert!(nets.contains(ip("52.89.214.238")));
        assert!(!nets.contains(ip("52.89.214.239")));
        assert!(nets.contains(ip("2001:db8::7")));
        assert!(!nets.contains(ip("2001:db9::7")));
        assert!(
            nets.contains(ip("::ffff:52.89.214.238")),
            "an IPv4-mapped address is the IPv4 address"
        );
        assert!(!Networks::default().contains(ip("127.0.0.1")));
    }
}
