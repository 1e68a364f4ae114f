//! Who the client is, for the per-address limits: the peer's address, or
//! behind a trusted proxy the last `X-Forwarded-For` entry that is not
//! itself a trusted proxy; IPv6 addresses grouped by a prefix (/64 by
//! default: one subscriber usually has a whole /64).

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::headers::list_items;

/// A client address as the limits count it: an IPv4 address, or an IPv6
/// address with its bits after the prefix cleared (IPv4-mapped IPv6
/// addresses count as the IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    /// The key of `ip`, IPv6 grouped by `ipv6_prefix` bits (1 to 128).
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6);
                    let keep = u32::from(ipv6_prefix.clamp(1, 128));
                    let mask = u128::MAX << (128 - keep);
                    AddrKey(IpAddr::V6(Ipv6Addr::from(bits & mask)))
                }
            },
        }
    }

    /// The (grouped) address.
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

/// The client's address: `peer` unless it is a trusted proxy; then the
/// `X-Forwarded-For` entries (all lines, in order) are walked from the last:
/// the first that is not a trusted proxy is the client. An entry that is not
/// an address stops the walk (the nearest trusted hop counts then: a client
/// cannot pick a fresh address with a garbled header); when every entry is
/// trusted, the first one is the client.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let items: Vec<&[u8]> = list_items(headers, "x-forwarded-for").collect();
    let mut client = peer;
    for item in items.iter().rev() {
        let Some(ip) = parse_entry(item) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, `[v6]`, `[v6]:port` or `v4:port`.
fn parse_entry(item: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(item).ok()?.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str, prefix: u8) -> IpAddr {
        AddrKey::new(text.parse().unwrap(), prefix).ip()
    }

    #[test]
    fn ipv6_is_grouped_by_its_prefix() {
        let a = key("2001:db8:1:2:aaaa::1", 64);
        assert_eq!(a, key("2001:db8:1:2:ffff:1:2:3", 64));
        assert_eq!(a.to_string(), "2001:db8:1:2::");
        assert_ne!(a, key("2001:db8:1:3::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 48), key("2001:db8:1:ffff::9", 48));
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        // IPv4 is never grouped; IPv4-mapped IPv6 counts as IPv4.
        assert_ne!(key("10.0.0.1", 64), key("10.0.0.2", 64));
        assert_eq!(key("::ffff:10.0.0.1", 64), key("10.0.0.1", 64));
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_last_untrusted_forwarded_entry() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not from a trusted proxy: the header is ignored.
        assert_eq!(
            client_address(stranger, &xff(&["1.2.3.4"]), &trusted),
            stranger
        );
        // From one: the last entry not itself trusted (a spoofed first entry is skipped).
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.2.2.2"]);
        assert_eq!(client_address(proxy, &h, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_address(proxy, &xff(&["[2001:db8::5]:443"]), &trusted),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(proxy, &xff(&["203.0.113.4:5000"]), &trusted),
            ip("203.0.113.4")
        );
        // Garbage stops the walk at the nearest trusted hop.
        let h = xff(&["198.51.100.7, garbage, 10.3.3.3"]);
        assert_eq!(client_address(proxy, &h, &trusted), ip("10.3.3.3"));
        // No header: the proxy itself; all trusted: the first entry.
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        let h = xff(&["10.9.9.9, 10.8.8.8"]);
        assert_eq!(client_address(proxy, &h, &trusted), ip("10.9.9.9"));
    }
}
