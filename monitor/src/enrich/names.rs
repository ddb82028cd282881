//! Naming destinations: `net_data` records become `dns`, `tls` and `http` events, each app's
//! DNS answers become a name -> address table (respecting TTLs), and connects are named.
//!
//! A connect is named when it is written if the app resolved its address before (`dns`: the
//! question name of the most recent answer that listed the address, while the answer's TTL
//! plus [`TTL_GRACE_S`] runs). Otherwise a resolver process's answers name it (Android: netd
//! resolves for every app; `host_via`): first an answer for a name the app asked the resolver
//! for over dnsproxyd, then any valid answer that listed the address (system-wide). The TLS server name and the HTTP Host are sent after the
//! connect, so they cannot be on its line: [`ConnNames`] learns them in the first read of a
//! session (`analysis`) and names the connects the DNS did not name in the second, for every
//! reader of a session (reports, baselines, scenarios); [`annotate`] does both on events in
//! memory.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use monitor_common::{
    connect::{AF_INET, AF_INET6},
    net_data::{DIR_SEND, FLAG_RESOLVER, NetData, WHY_DNS, WHY_DNSPROXY, WHY_FIRST},
};

use super::wire::{self, RData};
use crate::event::{self, Body, DnsDir, DnsVia, HostSource, HostVia, Proto, SniStatus};

/// Seconds an answer stays usable after its TTL ran out: a connect made right at expiry
/// still uses the name it just got.
pub const TTL_GRACE_S: u64 = 2;

/// SOCK_STREAM.
const SOCK_STREAM: u8 = 1;

/// How many kernel connection ids [`ConnIds`] keeps at least: four times the kernel's table of
/// tracked sockets (`SOCK_CONNS`, an LRU map of 16384), the only place a connection's records
/// get their id from. An id that has not been seen while this many newer ones were has long
/// left the kernel's table, so no record carries it any more.
pub const CONN_IDS_KEPT: usize = 65536;

/// Kernel connection id -> session id (1, 2, ... in order of first sight), in bounded memory:
/// two generations of at most [`CONN_IDS_KEPT`] entries; when the current one is full it
/// becomes the old one and the old one is dropped, and an id found in the old one moves to
/// the current one. A long recording with millions of connections keeps its memory flat.
#[derive(Default)]
struct ConnIds {
    current: HashMap<u64, u64>,
    old: HashMap<u64, u64>,
    /// Session ids given so far.
    given: u64,
}

impl ConnIds {
    fn get(&mut self, kernel_id: u64) -> u64 {
        if let Some(id) = self.current.get(&kernel_id) {
            return *id;
        }
        let id = match self.old.remove(&kernel_id) {
            Some(id) => id,
            None => {
                self.given += 1;
                self.given
            }
        };
        if self.current.len() >= CONN_IDS_KEPT {
            self.old = std::mem::take(&mut self.current);
        }
        self.current.insert(kernel_id, id);
        id
    }
}

/// Names a resolver's answers gave one address, most recent last (a CDN address serves many).
const NAMES_PER_ADDRESS: usize = 8;

/// Addresses in the system-wide table above which expired entries are dropped.
const SYSTEM_TABLE_PRUNE: usize = 4096;

#[derive(Default)]
pub struct Names {
    /// Kernel connection id -> session id.
    conn_ids: ConnIds,
    /// Per app: address -> (name, valid until, monotonic ns).
    tables: HashMap<String, HashMap<IpAddr, (String, u64)>>,
    /// Resolver processes' answers (system-wide): address -> (name, valid until), most recent
    /// last.
    system: HashMap<IpAddr, Vec<(String, u64)>>,
    /// Per app: names it asked a resolver for over dnsproxyd.
    asked: HashMap<String, std::collections::HashSet<String>>,
    /// Names (comm) of resolver processes (`--resolver`): a target with one of these names
    /// also teaches the system-wide table.
    resolver_comms: Vec<String>,
}

fn addr_of(family: u16, a: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*a))),
        _ => None,
    }
}

impl Names {
    /// The session's id for a kernel connection id (0: none).
    pub fn conn_id(&mut self, kernel_id: u64) -> Option<u64> {
        if kernel_id == 0 {
            return None;
        }
        Some(self.conn_ids.get(kernel_id))
    }

    /// Resolver processes by name (`--resolver`).
    pub fn set_resolvers(&mut self, comms: &[String]) {
        self.resolver_comms = comms.to_vec();
    }

    /// Is `comm` (a kernel comm, at most 15 bytes) one of the resolvers' names?
    pub fn is_resolver_comm(&self, comm: &str) -> bool {
        self.resolver_comms
            .iter()
            .any(|r| r.as_bytes()[..r.len().min(15)] == *comm.as_bytes())
    }

    /// The name of `addr` for a connect of `app` at `now_ns`, and whether a resolver's answer
    /// gave it: the name the app itself most recently resolved to `addr`; else a resolver's
    /// answer for a name the app asked it for (`dnsproxyd`); else the most recent resolver
    /// answer that listed the address (`resolver`). Only answers whose TTL still runs.
    pub fn host_for(
        &self,
        app: &str,
        addr: IpAddr,
        now_ns: u64,
    ) -> Option<(String, Option<HostVia>)> {
        if let Some((name, until)) = self.tables.get(app).and_then(|t| t.get(&addr))
            && now_ns <= *until
        {
            return Some((name.clone(), None));
        }
        let valid: Vec<&String> = self
            .system
            .get(&addr)?
            .iter()
            .rev()
            .filter(|(_, until)| now_ns <= *until)
            .map(|(n, _)| n)
            .collect();
        if let Some(asked) = self.asked.get(app)
            && let Some(n) = valid.iter().find(|n| asked.contains(n.as_str()))
        {
            return Some(((*n).clone(), Some(HostVia::Dnsproxyd)));
        }
        valid
            .first()
            .map(|n| ((*n).clone(), Some(HostVia::Resolver)))
    }

    fn learn(&mut self, app: &str, question: &str, answers: &[wire::Record], now_ns: u64) {
        let table = self.tables.entry(app.to_string()).or_default();
        for r in answers {
            if let RData::Addr(a) = r.data {
                let until = now_ns + (r.ttl as u64 + TTL_GRACE_S) * 1_000_000_000;
                table.insert(a, (question.to_string(), until));
            }
        }
    }

    /// A resolver's answer: the system-wide table (bounded: expired entries go when it grows).
    fn learn_system(&mut self, question: &str, answers: &[wire::Record], now_ns: u64) {
        if self.system.len() >= SYSTEM_TABLE_PRUNE {
            self.system.retain(|_, v| {
                v.retain(|(_, until)| now_ns <= *until);
                !v.is_empty()
            });
        }
        for r in answers {
            if let RData::Addr(a) = r.data {
                let until = now_ns + (r.ttl as u64 + TTL_GRACE_S) * 1_000_000_000;
                let v = self.system.entry(a).or_default();
                v.retain(|(n, _)| n != question);
                if v.len() >= NAMES_PER_ADDRESS {
                    v.remove(0);
                }
                v.push((question.to_string(), until));
            }
        }
    }

    /// The event a `net_data` record makes, if its bytes parse (`None`: nothing recognisable,
    /// e.g. the first bytes of a protocol other than TLS or HTTP). `app`: the target's app,
    /// `None` for a resolver process that is not a target (`FLAG_RESOLVER`); `comm`: the
    /// process's name.
    pub fn body(&mut self, app: Option<&str>, comm: &str, ts_ns: u64, d: &NetData) -> Option<Body> {
        let n = (d.captured as usize).min(d.data.len());
        let bytes = &d.data[..n];
        match (d.why, app) {
            (WHY_DNSPROXY, Some(app)) => {
                let body = dnsproxyd_body(bytes, n == d.len as usize)?;
                if let Body::Dns(event::Dns { name: Some(q), .. }) = &body {
                    self.asked
                        .entry(app.to_string())
                        .or_default()
                        .insert(q.clone());
                }
                Some(body)
            }
            (WHY_DNS, _) => {
                let resolver = d.flags & FLAG_RESOLVER != 0 || self.is_resolver_comm(comm);
                self.dns_body(app, resolver, ts_ns, d, bytes)
            }
            (WHY_FIRST, Some(_)) => self.first_bytes_body(d, bytes),
            _ => None,
        }
    }

    /// A DNS query or answer. Answers teach the app's name table (a target's) and, from a
    /// resolver process (`resolver`), the system-wide one.
    fn dns_body(
        &mut self,
        app: Option<&str>,
        resolver: bool,
        ts_ns: u64,
        d: &NetData,
        bytes: &[u8],
    ) -> Option<Body> {
        let n = bytes.len();
        let conn_id = self.conn_id(d.conn_id);
        let daddr = addr_of(d.family, &d.daddr);
        // DNS over TCP: each message has a 2-byte length in front, which a resolver
        // may read on its own (glibc reads it, then the message): a 2-byte read is
        // that length; a read that does not start with it is the message alone.
        let tcp = d.sock_type == SOCK_STREAM;
        if tcp && d.len <= 2 {
            return None;
        }
        let prefixed =
            tcp && n >= 2 && u16::from_be_bytes([bytes[0], bytes[1]]) as u32 + 2 == d.len;
        let msg = if prefixed { &bytes[2..] } else { bytes };
        let m = wire::parse_dns(msg)?;
        let (name, qtype) = match &m.question {
            Some((n, t)) => (Some(n.clone()), Some(wire::type_name(*t))),
            None => (None, None),
        };
        let answer = d.dir != DIR_SEND;
        if answer
            && m.rcode == 0
            && let Some(q) = &name
        {
            if let Some(app) = app {
                self.learn(app, q, &m.answers, ts_ns);
            }
            if resolver {
                self.learn_system(q, &m.answers, ts_ns);
            }
        }
        let whole = n == d.len as usize;
        Some(Body::Dns(event::Dns {
            dir: if answer {
                DnsDir::Answer
            } else {
                DnsDir::Query
            },
            via: if app.is_some() {
                DnsVia::Dns
            } else {
                DnsVia::Resolver
            },
            name,
            qtype,
            result: answer.then(|| wire::rcode_name(m.rcode)),
            answers: m
                .answers
                .iter()
                .map(|r| event::DnsAnswer {
                    name: r.name.clone(),
                    rtype: wire::type_name(r.rtype),
                    ttl: r.ttl,
                    data: match &r.data {
                        RData::Addr(a) => Some(a.to_string()),
                        RData::Name(n) => Some(n.clone()),
                        RData::Other => None,
                    },
                })
                .collect(),
            resolver: daddr,
            resolver_port: Some(d.dport),
            proto: if tcp { Proto::Tcp } else { Proto::Udp },
            conn_id,
            complete: whole && m.complete,
        }))
    }

    /// The first bytes a target sent on a connection: a TLS ClientHello or an HTTP request.
    fn first_bytes_body(&mut self, d: &NetData, bytes: &[u8]) -> Option<Body> {
        let conn_id = self.conn_id(d.conn_id);
        let daddr = addr_of(d.family, &d.daddr);
        let daddr = daddr?;
        if let Some(h) = wire::parse_client_hello(bytes) {
            let sni_status = if h.ech {
                SniStatus::Ech
            } else if h.sni.is_some() {
                SniStatus::Present
            } else {
                SniStatus::Absent
            };
            return Some(Body::Tls(event::Tls {
                conn_id,
                daddr,
                dport: d.dport,
                sni: h.sni,
                sni_status,
                alpn: h.alpn,
                versions: h.versions,
                complete: h.complete,
            }));
        }
        let r = wire::parse_http(bytes)?;
        Some(Body::Http(event::Http {
            conn_id,
            daddr,
            dport: d.dport,
            method: r.method,
            host: r.host,
            path: r.path,
            path_truncated: r.path_truncated,
        }))
    }
}

/// An app's request to netd's resolver socket (Android's dnsproxyd).
fn dnsproxyd_body(bytes: &[u8], complete: bool) -> Option<Body> {
    let (cmd, name) = wire::parse_dnsproxyd(bytes)?;
    Some(Body::Dns(event::Dns {
        dir: DnsDir::Query,
        via: DnsVia::Dnsproxyd,
        name,
        qtype: Some(cmd),
        result: None,
        answers: Vec::new(),
        resolver: None,
        resolver_port: None,
        proto: Proto::Unknown,
        conn_id: None,
        complete,
    }))
}

/// Name the connects of a session that DNS did not name, from the `tls` (`sni`) and `http`
/// (`Host`, without its port) events of the same connection.
#[cfg(test)]
pub fn annotate(events: &mut [crate::event::Event]) {
    let mut names = ConnNames::default();
    for e in events.iter() {
        match &e.body {
            Body::Tls(t) => names.sni(t.conn_id, t.sni.as_deref()),
            Body::Http(h) => names.http_host(h.conn_id, h.host.as_deref()),
            _ => {}
        }
    }
    for e in events.iter_mut() {
        if let Body::Connect(c) = &mut e.body {
            names.name(c);
        }
    }
}

/// The names of a session's connections from their TLS server names and HTTP Hosts (the SNI
/// wins over the Host), learnt in a first pass over the session and given to its connects in
/// the second ([`annotate`] on events in memory). Names are held once each.
#[derive(Default)]
pub struct ConnNames {
    by_conn: HashMap<u64, (u32, HostSource)>,
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl ConnNames {
    /// A `tls` event's `conn_id` and `sni`.
    pub fn sni(&mut self, conn_id: Option<u64>, sni: Option<&str>) {
        if let (Some(id), Some(n)) = (conn_id, sni) {
            self.learn(id, n, HostSource::Sni);
        }
    }

    /// An `http` event's `conn_id` and `host`.
    pub fn http_host(&mut self, conn_id: Option<u64>, host: Option<&str>) {
        if let (Some(id), Some(h)) = (conn_id, host) {
            self.learn(id, wire::host_without_port(h), HostSource::Http);
        }
    }

    fn learn(&mut self, id: u64, name: &str, source: HostSource) {
        if name.is_empty() {
            return;
        }
        let idx = match self.index.get(name) {
            Some(i) => *i,
            None => {
                let i = self.names.len() as u32;
                self.names.push(name.to_string());
                self.index.insert(name.to_string(), i);
                i
            }
        };
        let slot = self.by_conn.entry(id).or_insert((idx, source));
        if source == HostSource::Sni && slot.1 == HostSource::Http {
            *slot = (idx, source);
        }
    }

    /// Name a connect the DNS did not name.
    pub fn name(&self, c: &mut event::Connect) {
        if c.host.is_none()
            && let Some((idx, source)) = c.conn_id.and_then(|id| self.by_conn.get(&id))
        {
            c.host = Some(self.names[*idx as usize].clone());
            c.host_source = Some(*source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(addr: &str, ttl: u32) -> wire::Record {
        wire::Record {
            name: "x".into(),
            rtype: 1,
            ttl,
            data: RData::Addr(addr.parse().unwrap()),
        }
    }

    /// The app's own answer wins; then a resolver's answer for a name the app asked it for over
    /// dnsproxyd, though a later resolver answer listed the address under another name; then
    /// the most recent resolver answer; every one only while its TTL (+2 s) runs.
    #[test]
    fn connects_are_named_by_the_app_then_by_resolvers() {
        const S: u64 = 1_000_000_000;
        let mut n = Names::default();
        n.set_resolvers(&["netd".to_string()]);
        assert!(n.is_resolver_comm("netd") && !n.is_resolver_comm("netd2"));
        let cdn: IpAddr = "192.0.2.10".parse().unwrap();
        n.learn_system("tracker.example", &[a("192.0.2.10", 60)], 10 * S);
        n.learn_system("cdn.example", &[a("192.0.2.10", 30)], 11 * S);
        let via = |n: &Names, app: &str, t: u64| n.host_for(app, cdn, t);
        // Nobody asked: the most recent resolver answer, system-wide.
        assert_eq!(
            via(&n, "app", 12 * S),
            Some(("cdn.example".into(), Some(HostVia::Resolver)))
        );
        n.asked
            .entry("app".into())
            .or_default()
            .insert("tracker.example".into());
        assert_eq!(
            via(&n, "app", 12 * S),
            Some(("tracker.example".into(), Some(HostVia::Dnsproxyd)))
        );
        // Another app did not ask for it.
        assert_eq!(
            via(&n, "other", 12 * S),
            Some(("cdn.example".into(), Some(HostVia::Resolver)))
        );
        // TTLs: cdn.example ran out at 11 + 30 + 2 s, tracker.example at 10 + 60 + 2 s.
        assert_eq!(
            via(&n, "other", 44 * S),
            Some(("tracker.example".into(), Some(HostVia::Resolver)))
        );
        assert_eq!(via(&n, "other", 73 * S), None);
        // The app's own answer comes first.
        n.learn("app", "own.example", &[a("192.0.2.10", 300)], 13 * S);
        assert_eq!(via(&n, "app", 14 * S), Some(("own.example".into(), None)));
    }

    /// An address keeps at most `NAMES_PER_ADDRESS` names; the system-wide table drops expired
    /// entries once it holds `SYSTEM_TABLE_PRUNE` addresses.
    #[test]
    fn the_system_wide_table_is_bounded() {
        const S: u64 = 1_000_000_000;
        let mut n = Names::default();
        for i in 0..20 {
            n.learn_system(&format!("n{i}.example"), &[a("192.0.2.1", 60)], S);
        }
        assert_eq!(
            n.system[&"192.0.2.1".parse().unwrap()].len(),
            NAMES_PER_ADDRESS
        );
        for i in 0..SYSTEM_TABLE_PRUNE as u32 {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            n.learn_system("old.example", &[a(&addr, 1)], S);
        }
        n.learn_system("new.example", &[a("192.0.2.2", 60)], 100 * S);
        assert_eq!(n.system.len(), 1, "only the live answer is left");
    }

    /// Session ids are 1, 2, ... in order of first sight; an id in use keeps its session id
    /// however many connections come after it; memory stays bounded (the soak test found the
    /// map growing by one entry per connection, forever).
    #[test]
    fn connection_ids_are_stable_while_in_use_and_bounded() {
        let mut ids = ConnIds::default();
        let dns_socket = 7;
        assert_eq!(ids.get(dns_socket), 1);
        let n = 5 * CONN_IDS_KEPT as u64;
        for k in 0..n {
            let kernel_id = (k + 100) << 10;
            assert_eq!(ids.get(kernel_id), k + 2);
            // A record of a connection right after its connect: the same id.
            assert_eq!(ids.get(kernel_id), k + 2);
            // A long-lived socket used now and then keeps its id.
            if k % 1000 == 0 {
                assert_eq!(ids.get(dns_socket), 1);
            }
            assert!(ids.current.len() + ids.old.len() <= 2 * CONN_IDS_KEPT);
        }
        assert_eq!(ids.given, n + 1);
        // Seen again long after it left the kernel's table: a new session id, never an old one.
        assert_eq!(ids.get(100 << 10), n + 2);
    }
}
