//! The vocabulary of what emuwatch reports an app doing: one declaration per capability
//! ([`SPECS`]). Its name (in findings, scenario expectations, baselines), the event kinds that
//! carry it, the probe families that produce those events, the report category it is counted
//! under, how a finding and a count of it read, and which scenario expectation fields apply to
//! it are all read from here; the rest of the program derives from the table. Tests check that
//! each capability has its probe-table rows, schema doc entry, category and wording.
//!
//! The closed sets of values that events carry (connect protocol, where a path came from, why a
//! read total was taken, device operations, ...) are here too, as enums whose serde names are
//! the strings of the schema (docs/events.md).
use serde::{Deserialize, Serialize};

use crate::kernel::probes::Family;

/// Something an app does that a report finds and a scenario can expect: the `kind` of a
/// finding, of a device access, of a baseline device and of an `[[expect]]`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Connect,
    Camera,
    Microphone,
    File,
    /// Android services reached over binder (`enrich/binder.rs`, rules in `rules/binder.toml`).
    Location,
    DeviceIdentifier,
    Clipboard,
    Contacts,
    InstalledApps,
    Wifi,
    Accounts,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a capability is counted in a report (and what kind of data it reveals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Destinations and countries.
    Network,
    /// Camera and microphone accesses.
    Devices,
    /// File categories (docs/categories.md).
    Files,
    /// Android system services asked over binder (location, identifiers, clipboard, ...).
    Services,
}

/// A field of a scenario `[[expect]]` besides `name`, `kind`, `phases`, `app` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectField {
    Countries,
    AllowedCountries,
    Asns,
    AllowedAsns,
    Scopes,
    Hosts,
    Category,
    Categories,
    MaxBytes,
    Ops,
    Path,
}

impl ExpectField {
    #[cfg(test)]
    pub const ALL: [ExpectField; 11] = [
        ExpectField::Countries,
        ExpectField::AllowedCountries,
        ExpectField::Asns,
        ExpectField::AllowedAsns,
        ExpectField::Scopes,
        ExpectField::Hosts,
        ExpectField::Category,
        ExpectField::Categories,
        ExpectField::MaxBytes,
        ExpectField::Ops,
        ExpectField::Path,
    ];

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ExpectField::Countries => "countries",
            ExpectField::AllowedCountries => "allowed_countries",
            ExpectField::Asns => "asns",
            ExpectField::AllowedAsns => "allowed_asns",
            ExpectField::Scopes => "scopes",
            ExpectField::Hosts => "hosts",
            ExpectField::Category => "category",
            ExpectField::Categories => "categories",
            ExpectField::MaxBytes => "max_bytes",
            ExpectField::Ops => "ops",
            ExpectField::Path => "path",
        }
    }
}

/// Everything the program knows about one capability.
#[derive(Debug)]
pub struct Spec {
    pub capability: Capability,
    /// Its name in findings, scenario files and baselines.
    pub name: &'static str,
    /// The event kinds (`kind` in events.jsonl) that carry it.
    pub event_kinds: &'static [&'static str],
    /// Probe families whose programs produce those events (any attached one will do; the
    /// raw-syscalls programs serve every syscall family).
    pub families: &'static [Family],
    pub category: Category,
    /// One occurrence and several, in counts ("1 connect", "3 camera accesses").
    pub one: &'static str,
    pub many: &'static str,
    /// Scenario expectation fields that apply to it.
    pub expect_fields: &'static [ExpectField],
    /// The target of a finding whose path/address is unknown.
    pub unknown_target: &'static str,
    /// Its marks on the HTML timeline: CSS class and colour (files: the sensitive ones).
    pub mark_class: &'static str,
    pub mark_color: &'static str,
}

use ExpectField as F;

pub const SPECS: [Spec; 11] = [
    Spec {
        capability: Capability::Connect,
        name: "connect",
        event_kinds: &["connect", "dns", "tls", "http"],
        families: &[Family::Connect],
        category: Category::Network,
        one: "connect",
        many: "connects",
        expect_fields: &[
            F::Countries,
            F::AllowedCountries,
            F::Asns,
            F::AllowedAsns,
            F::Scopes,
            F::Hosts,
        ],
        unknown_target: "(unknown destination)",
        mark_class: "k-conn",
        mark_color: "#2563eb",
    },
    Spec {
        capability: Capability::Camera,
        name: "camera",
        event_kinds: &["camera"],
        families: &[Family::File, Family::Camera],
        category: Category::Devices,
        one: "camera access",
        many: "camera accesses",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown device)",
        mark_class: "k-cam",
        mark_color: "#dc2626",
    },
    Spec {
        capability: Capability::Microphone,
        name: "microphone",
        event_kinds: &["microphone"],
        families: &[Family::File, Family::Camera],
        category: Category::Devices,
        one: "microphone access",
        many: "microphone accesses",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown device)",
        mark_class: "k-mic",
        mark_color: "#ea580c",
    },
    Spec {
        capability: Capability::File,
        name: "file",
        event_kinds: &["file_open", "file_read"],
        families: &[Family::File],
        category: Category::Files,
        one: "file open",
        many: "file opens",
        expect_fields: &[F::Category, F::Categories, F::MaxBytes, F::Path],
        unknown_target: "(unknown path)",
        mark_class: "k-sfile",
        mark_color: "#7c3aed",
    },
    Spec {
        capability: Capability::Location,
        name: "location",
        event_kinds: &["location"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "location request",
        many: "location requests",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-loc",
        mark_color: "#0d9488",
    },
    Spec {
        capability: Capability::DeviceIdentifier,
        name: "device_identifier",
        event_kinds: &["device_identifier"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "device identifier read",
        many: "device identifier reads",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-ident",
        mark_color: "#be185d",
    },
    Spec {
        capability: Capability::Clipboard,
        name: "clipboard",
        event_kinds: &["clipboard"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "clipboard access",
        many: "clipboard accesses",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-clip",
        mark_color: "#ca8a04",
    },
    Spec {
        capability: Capability::Contacts,
        name: "contacts",
        event_kinds: &["contacts"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "contacts query",
        many: "contacts queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-contacts",
        mark_color: "#4d7c0f",
    },
    Spec {
        capability: Capability::InstalledApps,
        name: "installed_apps",
        event_kinds: &["installed_apps"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "installed-apps query",
        many: "installed-apps queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-apps",
        mark_color: "#0369a1",
    },
    Spec {
        capability: Capability::Wifi,
        name: "wifi",
        event_kinds: &["wifi"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "Wi-Fi query",
        many: "Wi-Fi queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-wifi",
        mark_color: "#6d28d9",
    },
    Spec {
        capability: Capability::Accounts,
        name: "accounts",
        event_kinds: &["accounts"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "accounts query",
        many: "accounts queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-accounts",
        mark_color: "#9f1239",
    },
];

impl Capability {
    pub const ALL: [Capability; 11] = [
        Capability::Connect,
        Capability::Camera,
        Capability::Microphone,
        Capability::File,
        Capability::Location,
        Capability::DeviceIdentifier,
        Capability::Clipboard,
        Capability::Contacts,
        Capability::InstalledApps,
        Capability::Wifi,
        Capability::Accounts,
    ];

    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// "1 connect", "3 camera accesses".
    pub fn count_text(self, n: u64) -> String {
        let s = self.spec();
        format!("{n} {}", if n == 1 { s.one } else { s.many })
    }

    /// What one occurrence is, for people: `connect to 1.2.3.4:443/tcp`, `camera /dev/video0`,
    /// `file /proc/cpuinfo` (`None`: the path or address is unknown).
    pub fn subject(self, target: Option<&str>) -> String {
        let target = target.unwrap_or(self.spec().unknown_target);
        match self {
            Capability::Connect => format!("connect to {target}"),
            c if c.spec().category == Category::Services => format!("{}: {target}", c.action()),
            _ => format!("{self} {target}"),
        }
    }

    /// What the app did, for the report's headline: "read the clipboard" (3 times after close).
    pub fn action(self) -> &'static str {
        match self {
            Capability::Connect => "connected",
            Capability::Camera => "used the camera",
            Capability::Microphone => "used the microphone",
            Capability::File => "read files",
            Capability::Location => "asked for the location",
            Capability::DeviceIdentifier => "read a device identifier",
            Capability::Clipboard => "read the clipboard",
            Capability::Contacts => "queried the contacts",
            Capability::InstalledApps => "listed the installed apps",
            Capability::Wifi => "queried Wi-Fi",
            Capability::Accounts => "queried the accounts",
        }
    }

    /// Does this scenario expectation field apply to it?
    pub fn takes(self, field: ExpectField) -> bool {
        self.spec().expect_fields.contains(&field)
    }

    /// The capabilities a field applies to.
    pub fn taking(field: ExpectField) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| c.takes(field))
            .collect()
    }
}

/// A closed set of values an event field takes: an enum whose serde names are the schema's
/// strings, with `as_str` (the same name) and `Display`.
macro_rules! values {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(
            serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
        )]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $v,)+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &[$name] = &[$($name::$v,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}
pub(crate) use values;

values! {
    /// `connect`: the destination's address scope (geo.rs decides it).
    Scope {
        Loopback => "loopback",
        Private => "private",
        LinkLocal => "link_local",
        Multicast => "multicast",
        Unspecified => "unspecified",
        /// Carrier-grade NAT shared space, 100.64.0.0/10.
        Cgnat => "cgnat",
        /// Documentation ranges (TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20).
        Documentation => "documentation",
        /// 255.255.255.255.
        Broadcast => "broadcast",
        /// Other special-purpose space that is not routed on the internet (240.0.0.0/4,
        /// benchmarking, IETF protocol assignments, 100::/64 discard, outside 2000::/3).
        Reserved => "reserved",
        Public => "public",
    }
}

values! {
    /// `session.json`: why the recording ended.
    StopReason {
        /// Every target process exited.
        TargetsExited => "targets_exited",
        /// `--duration` (or a scenario's `[record] duration`) passed.
        Duration => "duration",
        /// SIGINT or SIGTERM.
        Signal => "signal",
        /// A stop request over the control socket (`emuwatch run` when its steps are done).
        StopRequest => "stop_request",
        /// An error stopped the recording (the error was printed).
        Error => "error",
        /// `--max-size`: events.jsonl reached its size limit.
        MaxSize => "max_size",
    }
}

values! {
    /// `lost` events and `session.json` `lost.by_reason`: why the kernel could not deliver
    /// events. Declared in the order of the kernel's loss counter slots
    /// (monitor-ebpf `maps::loss`); `slot` maps one to the other.
    LossReason {
        /// The ring buffer was full.
        RingBufferFull => "ring_buffer_full",
        /// A per-thread pending-syscall map was full.
        PendingMapFull => "pending_map_full",
        /// The per-fd read aggregate map was full: reads on that file were not counted.
        FdTableFull => "fd_table_full",
        /// A 32-bit (compat) target's syscall on the raw path: not decoded.
        CompatSyscallNotDecoded => "compat_syscall_not_decoded",
    }
}

impl LossReason {
    /// The kernel's loss counter slot for this reason.
    pub fn slot(self) -> u32 {
        use monitor_common::loss;
        match self {
            LossReason::RingBufferFull => loss::RINGBUF_FULL,
            LossReason::PendingMapFull => loss::PENDING_FULL,
            LossReason::FdTableFull => loss::FD_TABLE_FULL,
            LossReason::CompatSyscallNotDecoded => loss::COMPAT_SYSCALL,
        }
    }
}

values! {
    /// `connect`: the socket's address family.
    AddrFamily {
        Inet => "inet",
        Inet6 => "inet6",
    }
}

values! {
    /// `connect`: the protocol (`unknown` when neither the cgroup hook nor `socket()` told it).
    /// Declared in alphabetical order: destinations sort by it.
    Proto {
        Tcp => "tcp",
        Udp => "udp",
        Unknown => "unknown",
    }
}

values! {
    /// `connect`: where its `host` came from.
    HostSource {
        /// The app's own DNS answer for the address (within its TTL).
        Dns => "dns",
        /// The TLS server name sent on this connection.
        Sni => "sni",
        /// The HTTP Host header sent on this connection.
        Http => "http",
    }
}

values! {
    /// `dns`: a query sent or an answer received.
    DnsDir {
        Query => "query",
        Answer => "answer",
    }
}

values! {
    /// `dns`: how the name was seen.
    DnsVia {
        /// A DNS message on port 53 (UDP or TCP).
        Dns => "dns",
        /// A request written to Android's `/dev/socket/dnsproxyd` (netd resolves it).
        Dnsproxyd => "dnsproxyd",
    }
}

values! {
    /// `tls`: what the ClientHello says about the server name.
    SniStatus {
        Present => "present",
        /// No server_name extension: the name is not sent.
        Absent => "absent",
        /// Encrypted Client Hello: only the outer (public) name is seen.
        Ech => "ech",
    }
}

values! {
    /// `file_open`: where the path came from.
    PathOrigin {
        /// Copied at entry, made absolute against the cwd or directory fd.
        Syscall => "syscall",
        /// The string's page was not resident at entry; copied at syscall exit.
        SyscallExit => "syscall_exit",
        /// Relative, and its base was unknown: the path as passed.
        SyscallRelative => "syscall_relative",
        /// The kernel could not read it; recovered from /proc/PID/fd.
        ProcFd => "proc_fd",
        Unrecovered => "unrecovered",
        /// Longer than the kernel copies (`path_truncated`): the path is unknown, its first
        /// bytes are in `path_prefix`.
        Truncated => "truncated",
    }
}

values! {
    /// `file_read`: when the total was taken.
    FlushedAt {
        /// The fd was closed.
        Close => "close",
        /// The process ended with it open.
        Exit => "exit",
        /// The recording ended.
        Stop => "stop",
    }
}

values! {
    /// `camera` / `microphone`: the operation. Declared in alphabetical order: reports list a
    /// device's operations sorted by name.
    DeviceOp {
        /// The device node was opened.
        Open => "open",
        /// A binder transaction to a camera service (Android).
        ServiceCall => "service_call",
        /// A `VIDIOC_STREAMON` ioctl.
        StreamOn => "stream_on",
    }
}

impl DeviceOp {
    /// In the order the docs list them.
    pub const DOC_ORDER: [DeviceOp; 3] =
        [DeviceOp::Open, DeviceOp::StreamOn, DeviceOp::ServiceCall];
}

values! {
    /// `binder_call`: the layout of the parcel's interface token, which tells the Android
    /// release's libbinder apart.
    TokenLayout {
        /// Strict-mode policy, work-source uid, `SYST` header (Android 11+, system binder).
        System => "system",
        /// The same with the `VNDR` header (vendor binder).
        Vendor => "vendor",
        /// Strict-mode policy and work-source uid (Android 10).
        WorkSource => "work_source",
        /// Strict-mode policy only (Android 9 and older).
        StrictMode => "strict_mode",
    }
}

values! {
    /// `app_state`: where the score came from.
    StateSource {
        /// The `oom_score_adj_update` tracepoint.
        Kernel => "kernel",
        /// Read from /proc when the process was first seen.
        Proc => "proc",
        /// Found when the recording started.
        Start => "start",
    }
}

values! {
    /// `app_state`: who wrote the score.
    Writer {
        /// A process outside the app (lmkd, system_server, ...): moves the app's phase.
        System => "system",
        /// The process itself or another process of its app: recorded, does not count.
        App => "app",
    }
}

values! {
    /// `phase`: why the app's phase changed.
    PhaseReason {
        /// A system-written oom_score_adj band (a relaunch too).
        AppState => "app_state",
        /// The process hosting the app's screen ended.
        MainExited => "main_exited",
        /// The app's last process ended.
        AllExited => "all_exited",
        Marker => "marker",
        Start => "start",
    }
}

values! {
    /// `phase` (closes): how the process ended.
    ExitHow {
        /// By `signal`.
        Killed => "killed",
        /// With `exit_code`.
        Exited => "exited",
        Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_declaration_order() {
        for (i, s) in SPECS.iter().enumerate() {
            assert_eq!(s.capability as usize, i, "{}", s.name);
            assert_eq!(Capability::ALL[i], s.capability);
        }
    }

    #[test]
    fn names_are_the_serde_names() {
        for c in Capability::ALL {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
        for op in DeviceOp::DOC_ORDER {
            assert_eq!(
                serde_json::to_value(op).unwrap(),
                serde_json::Value::String(op.as_str().into())
            );
        }
    }

    #[test]
    fn every_expectation_field_applies_to_some_capability() {
        for f in ExpectField::ALL {
            assert!(!Capability::taking(f).is_empty(), "{}", f.name());
        }
    }

    #[test]
    fn values_pad_like_strings() {
        assert_eq!(format!("[{:<6}]", Proto::Tcp), "[tcp   ]");
        assert_eq!(format!("[{:>8}]", Capability::File), "[    file]");
    }

    #[test]
    fn counts_read_in_singular_and_plural() {
        assert_eq!(Capability::Connect.count_text(1), "1 connect");
        assert_eq!(Capability::Camera.count_text(2), "2 camera accesses");
    }
}

#[cfg(test)]
#[path = "capability_tests.rs"]
mod completeness;
