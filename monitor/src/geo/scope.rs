//! The scope of an address (loopback, private, link-local, ..., public), IPv4-mapped and
//! NAT64 addresses by the IPv4 address they stand for.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Scope;

/// The address a destination really is: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) and NAT64
/// well-known-prefix (`64:ff9b::a.b.c.d`, RFC 6052) addresses stand for their IPv4 address.
pub fn effective_addr(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            ip
        }
    }
}

/// Classify an address (IPv4-mapped and NAT64 addresses by their IPv4 address).
pub fn scope(ip: IpAddr) -> Scope {
    match effective_addr(ip) {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => scope_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn scope_v4(ip: Ipv4Addr) -> Scope {
    // IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors).
    let table: &[([u8; 4], u32, Scope)] = &[
        ([0, 0, 0, 0], 8, Scope::Unspecified),
        ([127, 0, 0, 0], 8, Scope::Loopback),
        ([10, 0, 0, 0], 8, Scope::Private),
        ([172, 16, 0, 0], 12, Scope::Private),
        ([192, 168, 0, 0], 16, Scope::Private),
        ([100, 64, 0, 0], 10, Scope::Cgnat),
        ([169, 254, 0, 0], 16, Scope::LinkLocal),
        ([192, 0, 2, 0], 24, Scope::Documentation),
        ([198, 51, 100, 0], 24, Scope::Documentation),
        ([203, 0, 113, 0], 24, Scope::Documentation),
        ([255, 255, 255, 255], 32, Scope::Broadcast),
        ([224, 0, 0, 0], 4, Scope::Multicast),
        ([240, 0, 0, 0], 4, Scope::Reserved),
        ([192, 0, 0, 0], 24, Scope::Reserved),
        ([198, 18, 0, 0], 15, Scope::Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, s)| *s)
        .unwrap_or(Scope::Public)
}

fn scope_v6(ip: Ipv6Addr) -> Scope {
    // IANA IPv6 Special-Purpose Address Registry; mapped/NAT64 were handled by the caller.
    if ip.is_unspecified() {
        return Scope::Unspecified;
    }
    if ip.is_loopback() {
        return Scope::Loopback;
    }
    let table: &[([u16; 8], u32, Scope)] = &[
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Scope::Multicast),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Scope::LinkLocal),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Scope::Private),
        // Deprecated site-local: private use in practice.
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Scope::Private),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, Scope::Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Scope::Documentation),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, Scope::Reserved),
        ([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48, Scope::Reserved),
        // Local-use NAT64 prefix (RFC 8215): translated inside one network.
        ([0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0], 48, Scope::Private),
        ([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Scope::Public),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, s)| *s)
        .unwrap_or(Scope::Reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(a: &str) -> &'static str {
        scope(a.parse().unwrap()).as_str()
    }

    #[test]
    fn scope_ipv4() {
        assert_eq!(s("127.0.0.1"), "loopback");
        assert_eq!(s("127.45.6.7"), "loopback");
        assert_eq!(s("10.1.2.3"), "private");
        assert_eq!(s("172.16.0.1"), "private");
        assert_eq!(s("172.31.255.255"), "private");
        assert_eq!(s("172.32.0.1"), "public");
        assert_eq!(s("192.168.1.1"), "private");
        assert_eq!(s("169.254.10.1"), "link_local");
        assert_eq!(s("224.0.0.251"), "multicast");
        assert_eq!(s("239.255.255.250"), "multicast");
        assert_eq!(s("0.0.0.0"), "unspecified");
        assert_eq!(s("100.64.0.1"), "cgnat");
        assert_eq!(s("100.127.255.255"), "cgnat");
        assert_eq!(s("100.128.0.1"), "public");
        assert_eq!(s("192.0.2.7"), "documentation");
        assert_eq!(s("198.51.100.7"), "documentation");
        assert_eq!(s("203.0.113.7"), "documentation");
        assert_eq!(s("255.255.255.255"), "broadcast");
        assert_eq!(s("240.1.2.3"), "reserved");
        assert_eq!(s("198.18.0.1"), "reserved");
        assert_eq!(s("81.2.69.160"), "public");
        assert_eq!(s("8.8.8.8"), "public");
    }

    #[test]
    fn scope_ipv6() {
        assert_eq!(s("::1"), "loopback");
        assert_eq!(s("::"), "unspecified");
        assert_eq!(s("fe80::1"), "link_local");
        assert_eq!(s("fd00::1"), "private");
        assert_eq!(s("fc12::1"), "private");
        assert_eq!(s("ff02::fb"), "multicast");
        assert_eq!(s("2001:db8::1"), "documentation");
        assert_eq!(s("3fff::1"), "documentation");
        assert_eq!(s("100::1"), "reserved");
        assert_eq!(s("2a02:cf40::1"), "public");
        assert_eq!(s("2001:4860:4860::8888"), "public");
        // IPv4-mapped and NAT64 addresses are classified by their IPv4 address.
        assert_eq!(s("::ffff:127.0.0.1"), "loopback");
        assert_eq!(s("::ffff:192.168.0.1"), "private");
        assert_eq!(s("::ffff:81.2.69.160"), "public");
        assert_eq!(s("64:ff9b::81.2.69.160"), "public");
        assert_eq!(s("64:ff9b::10.0.0.1"), "private");
    }

    #[test]
    fn effective_addresses() {
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(effective_addr(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(effective_addr(ip("64:ff9b::1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(effective_addr(ip("2001:db8::1")), ip("2001:db8::1"));
    }
}
