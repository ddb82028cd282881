//! Network records (connects, the bytes that name destinations) become events.
use super::*;

impl Enricher {
    /// A connect, with its destination named and located.
    pub(super) fn on_connect(
        &mut self,
        h: Header,
        c: monitor_common::connect::Connect,
        out: &mut Vec<Event>,
    ) {
        let (family, daddr) = match c.family {
            AF_INET => (
                AddrFamily::Inet,
                IpAddr::V4(Ipv4Addr::new(
                    c.daddr[0], c.daddr[1], c.daddr[2], c.daddr[3],
                )),
            ),
            AF_INET6 => (AddrFamily::Inet6, IpAddr::V6(Ipv6Addr::from(c.daddr))),
            _ => return,
        };
        // IPPROTO_TCP = 6, IPPROTO_UDP = 17; SOCK_STREAM = 1, SOCK_DGRAM = 2.
        let proto = match (c.protocol, c.sock_type) {
            (6, _) | (0, 1) => Proto::Tcp,
            (17, _) | (0, 2) => Proto::Udp,
            _ => Proto::Unknown,
        };
        let app = self.known(&h, out).app;
        let host = self.names.host_for(&app, daddr, h.ts_ns);
        let mut connect = event::Connect {
            family,
            proto,
            daddr,
            dport: c.dport,
            result: c.result,
            error: error_of(c.result),
            scope: None,
            country: None,
            asn: None,
            as_org: None,
            conn_id: self.names.conn_id(c.conn_id),
            host_source: host.as_ref().map(|_| event::HostSource::Dns),
            host,
        };
        self.geo.annotate(&mut connect);
        let body = Body::Connect(connect);
        self.event(&h, body, out);
    }

    /// Bytes sent or received that name a destination (DNS, TLS, HTTP, dnsproxyd).
    pub(super) fn on_net_data(
        &mut self,
        h: Header,
        d: &monitor_common::net_data::NetData,
        out: &mut Vec<Event>,
    ) {
        let app = self.known(&h, out).app;
        if let Some(body) = self.names.body(&app, h.ts_ns, d) {
            self.event(&h, body, out);
        }
    }
}
