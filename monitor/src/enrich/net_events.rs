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
        let (host, host_via) = match self.names.host_for(&app, daddr, h.ts_ns) {
            Some((name, via)) => (Some(name), via),
            None => (None, None),
        };
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
            host_via,
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
        let comm = crate::decode::cstr(&h.comm);
        if d.flags & monitor_common::net_data::FLAG_RESOLVER != 0 {
            // A resolver process that is not a target: its DNS messages are no app's. They
            // are written without an app or phase, and the process is not added to the
            // process table (it has no lifecycle events).
            if let Some(body) = self.names.body(None, &comm, h.ts_ns, d) {
                let ppid = *self
                    .resolver_ppids
                    .entry(h.tgid)
                    .or_insert_with(|| self.procs.proc.facts(h.tgid).1.unwrap_or(0));
                out.push(self.header_event(&h, comm, body, ppid, None));
            }
            return;
        }
        let app = self.known(&h, out).app;
        if let Some(body) = self.names.body(Some(&app), &comm, h.ts_ns, d) {
            self.event(&h, body, out);
        }
    }
}
