//! The userspace event: one JSON object per line of `events.jsonl`.
//! The schema is documented in `docs/events.md`; `SCHEMA_VERSION` goes into `session.json`.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::capability::{
    AddrFamily, Capability, DeviceOp, DnsDir, DnsVia, ExitHow, FlushedAt, HostSource, HostVia,
    LossReason, PathOrigin, PhaseReason, Proto, Scope, SniStatus, StateSource, StopReason,
    TokenLayout, Writer,
};

/// Version of the event and session schema. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// Wall-clock time, RFC 3339 UTC with nanoseconds.
    #[serde(with = "rfc3339_nanos")]
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub body: Body,
    /// Process id (kernel tgid).
    pub pid: u32,
    /// Thread id (kernel pid).
    pub tid: u32,
    /// Parent process id when the process was created (or first seen).
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    /// The app this process belongs to: an Android package, or the root process's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The app's phase when this happened: `foreground`, `background` or `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Foreground,
    Background,
    Closed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Foreground => "foreground",
            Phase::Background => "background",
            Phase::Closed => "closed",
        }
    }
}

/// What happened; `kind` is the JSON tag.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Process(Process),
    Connect(Connect),
    FileOpen(FileOpen),
    FileRead(FileRead),
    Camera(Device),
    Microphone(Device),
    /// A DNS query or answer of the process (or its request to Android's dnsproxyd).
    Dns(Dns),
    /// The TLS ClientHello opening a connection: the server name asked for.
    Tls(Tls),
    /// The first HTTP request on a connection: method, Host and path (never the body).
    Http(Http),
    /// Android services reached over binder (a `binder_call` matched by the rules).
    Location(Device),
    DeviceIdentifier(Device),
    Clipboard(Device),
    Contacts(Device),
    InstalledApps(Device),
    Wifi(Device),
    Accounts(Device),
    /// A binder transaction of a target (every one, matched by the rules or not).
    BinderCall(BinderCall),
    AppState(AppState),
    Lost(Lost),
    /// The app's phase changed (also a timeline event).
    Phase(PhaseChange),
    /// A marker added with `emuwatch mark` or by a scenario step.
    Marker(Marker),
}

impl Body {
    /// The capability this event shows, if any (by its kind, from the capability table).
    pub fn capability(&self) -> Option<Capability> {
        let kind = self.kind();
        crate::capability::SPECS
            .iter()
            .find(|s| s.event_kinds.contains(&kind))
            .map(|s| s.capability)
    }

    /// The device-like payload of a camera, microphone or Android-service event.
    pub fn device(&self) -> Option<&Device> {
        match self {
            Body::Camera(d)
            | Body::Microphone(d)
            | Body::Location(d)
            | Body::DeviceIdentifier(d)
            | Body::Clipboard(d)
            | Body::Contacts(d)
            | Body::InstalledApps(d)
            | Body::Wifi(d)
            | Body::Accounts(d) => Some(d),
            _ => None,
        }
    }

    /// The event of capability `c` (camera, microphone or an Android service) for `d`.
    pub fn of_device(c: Capability, d: Device) -> Option<Body> {
        Some(match c {
            Capability::Camera => Body::Camera(d),
            Capability::Microphone => Body::Microphone(d),
            Capability::Location => Body::Location(d),
            Capability::DeviceIdentifier => Body::DeviceIdentifier(d),
            Capability::Clipboard => Body::Clipboard(d),
            Capability::Contacts => Body::Contacts(d),
            Capability::InstalledApps => Body::InstalledApps(d),
            Capability::Wifi => Body::Wifi(d),
            Capability::Accounts => Body::Accounts(d),
            Capability::Connect | Capability::File => return None,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Body::Process(_) => "process",
            Body::Connect(_) => "connect",
            Body::FileOpen(_) => "file_open",
            Body::FileRead(_) => "file_read",
            Body::Camera(_) => "camera",
            Body::Microphone(_) => "microphone",
            Body::Dns(_) => "dns",
            Body::Tls(_) => "tls",
            Body::Http(_) => "http",
            Body::Location(_) => "location",
            Body::DeviceIdentifier(_) => "device_identifier",
            Body::Clipboard(_) => "clipboard",
            Body::Contacts(_) => "contacts",
            Body::InstalledApps(_) => "installed_apps",
            Body::Wifi(_) => "wifi",
            Body::Accounts(_) => "accounts",
            Body::BinderCall(_) => "binder_call",
            Body::AppState(_) => "app_state",
            Body::Lost(_) => "lost",
            Body::Phase(_) => "phase",
            Body::Marker(_) => "marker",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProcOp {
    Fork,
    Exec,
    Exit,
    /// The working directory changed (chdir/fchdir).
    Chdir,
    /// A thread renamed itself (`comm` is the old name, `name` the new one).
    Rename,
    /// The process took a new uid (setuid/setreuid/setresuid): a zygote child becoming its
    /// app's process.
    Setuid,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Process {
    pub op: ProcOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Exit status (0-255) for a normal exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal number when the process was killed by a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// New working directory (`chdir`), absolute when it could be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Result of a failed `chdir` (-errno); absent when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i32>,
    /// New thread name (`rename`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The process's full name (`rename`): argv[0] when it ends with the new name, as Android
    /// app processes' `pkg` / `pkg:suffix` names do (the thread name keeps the last 15 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    /// `setuid`: the call (`setuid`, `setreuid`, `setresuid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    /// `setuid`: this uid change made the process a target (it was not one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub became_target: Option<bool>,
}

impl Process {
    /// An `op` with no details; fill the ones it has with struct update syntax.
    pub fn op(op: ProcOp) -> Process {
        Process {
            op,
            child_pid: None,
            filename: None,
            exit_code: None,
            signal: None,
            cwd: None,
            result: None,
            name: None,
            process_name: None,
            syscall: None,
            became_target: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Connect {
    /// `inet` or `inet6`.
    pub family: AddrFamily,
    /// `tcp`, `udp`, or `unknown` when the cgroup hook did not see the socket.
    pub proto: Proto,
    pub daddr: IpAddr,
    pub dport: u16,
    /// 0 or -errno, as the syscall returned it.
    pub result: i32,
    /// errno name when `result` < 0 (e.g. `ECONNREFUSED`, `EINPROGRESS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Address scope: `loopback`, `private`, `link_local`, `multicast`, `unspecified`, `public`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// ISO 3166 country code of a public destination (GeoIP database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Autonomous system number and organisation of a public destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    /// The connection's id in this session (1, 2, ...), shared with its `tls` / `http` events;
    /// absent when name capture is off or the connect failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<u64>,
    /// The destination's name: the name this app most recently resolved to `daddr` (within
    /// the answer's TTL), else the TLS server name or HTTP Host sent on this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where `host` came from: `dns`, `sni` or `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_source: Option<HostSource>,
    /// A `dns` host learnt from a resolver process's answer (`dnsproxyd`: for a name this app
    /// asked it for; `resolver`: system-wide); absent when the app's own answer named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_via: Option<HostVia>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Dns {
    /// `query` (sent) or `answer` (received).
    pub dir: DnsDir,
    /// `dns` (a DNS message to or from port 53), `dnsproxyd` (an Android app's request to
    /// netd's resolver socket; netd sends the DNS packets) or `resolver` (a DNS message of a
    /// resolver process that is not a target).
    pub via: DnsVia,
    /// The name asked for (escaped: see docs/events.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Record type asked for (`A`, `AAAA`, ...); the dnsproxyd command (`getaddrinfo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// Answers: `noerror`, `nxdomain`, `servfail`, `refused`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Answer records in order (CNAME chain first, as the server sent them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<DnsAnswer>,
    /// The resolver's address and port (`dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver_port: Option<u16>,
    /// `udp` or `tcp`.
    pub proto: Proto,
    /// The socket's connection id when it was connected while recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<u64>,
    /// The whole message was read (false: the copy of `DATA_LEN` bytes cut it short, or it
    /// was malformed past the question).
    pub complete: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DnsAnswer {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    /// The address (A, AAAA) or the name (CNAME); absent for other types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<u64>,
    pub daddr: IpAddr,
    pub dport: u16,
    /// The server name (SNI); absent: see `sni_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// `present`, `absent` (no server_name extension), or `ech` (Encrypted Client Hello: `sni`
    /// is the outer, public name; the real one is not seen).
    pub sni_status: SniStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// Versions offered, from supported_versions when present (`TLS1.3`, `TLS1.2`, ...).
    pub versions: Vec<String>,
    /// The ClientHello was read to the end of its extensions.
    pub complete: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<u64>,
    pub daddr: IpAddr,
    pub dport: u16,
    pub method: String,
    /// The Host header as sent (absent: none in the bytes copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The request target (path and query string), at most 256 characters.
    pub path: String,
    /// The target was longer than 256 characters (or the copy ended inside it).
    pub path_truncated: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FileOpen {
    /// Absolute path; `null` only when it could not be recovered (see `path_origin`).
    pub path: Option<String>,
    /// Where the path came from (docs/events.md: `syscall`, `syscall_exit`, `syscall_relative`,
    /// `proc_fd`, `unrecovered`).
    pub path_origin: PathOrigin,
    /// The path passed was longer than the kernel copies (255 bytes): `path` is null (the
    /// path is unknown; its prefix is not taken for it) and the session is not complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    /// With `path_truncated`: the bytes copied, as passed (neither made absolute nor
    /// resolved: `..` in a cut path could name another file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// open(2) flags as numbers and as names.
    pub flags: u32,
    pub flags_text: String,
    /// The new fd, or -errno.
    pub result: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `openat`, `openat2` or `open`.
    pub syscall: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FileRead {
    pub path: Option<String>,
    pub fd: i32,
    /// Bytes returned by successful read-family calls on this fd.
    pub bytes: u64,
    /// Number of successful read-family calls (a 0-byte read at EOF counts).
    pub reads: u64,
    /// When the total was taken: `close`, `exit` (process ended) or `stop` (recording ended).
    pub flushed_at: FlushedAt,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Device {
    /// `open`, `stream_on` (VIDIOC_STREAMON ioctl) or `service_call` (binder, Android).
    pub op: DeviceOp,
    /// The device node, or for `service_call` `binder:SERVICE/INTERFACE.METHOD`.
    pub path: Option<String>,
    /// 0 / new fd, or -errno.
    pub result: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `service_call`: the binder interface, method (when the rules know the code), code and
    /// service name (when the process looked the handle up while recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Device {
    /// A device event with no binder details.
    pub fn new(op: DeviceOp, path: Option<String>, result: i32) -> Device {
        Device {
            op,
            path,
            result,
            error: error_of(result),
            interface: None,
            method: None,
            code: None,
            service: None,
        }
    }
}

/// A binder transaction (`BC_TRANSACTION`) sent by a target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BinderCall {
    /// Interface token of the parcel (`android.content.IClipboard`); absent when the parcel
    /// does not start with one emuwatch could read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Method name, when the rules know the code for this interface and API level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Transaction code (FIRST_CALL_TRANSACTION + method index for AIDL interfaces).
    pub code: u32,
    /// `TF_ONE_WAY`: the caller does not wait for a reply.
    pub one_way: bool,
    /// Binder handle in the caller (0: the service manager).
    pub handle: u32,
    /// Service name of the handle, learnt from this process's service-manager lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Process that received it (binder/binder_transaction tracepoint) and its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee: Option<String>,
    /// Bytes of the parcel.
    pub data_size: u64,
    /// How the interface token was laid out: `system`, `vendor`, `work_source`, `strict_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_layout: Option<TokenLayout>,
    /// The capability the rules give this call (the event of that kind follows this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<Capability>,
    /// Service-manager `getService`/`checkService`: the name asked for and the handle the
    /// reply gave (absent: no such service, or the reply was not seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_handle: Option<u32>,
    /// Content provider calls: the authority of the `content://` URI in the parcel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// The ioctl's result: 0 or -errno.
    pub result: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AppState {
    pub oom_score_adj: i32,
    /// ActivityManager band name for the score.
    pub band: String,
    /// `kernel` (oom_score_adj_update tracepoint), `proc` (read when first seen) or `start`
    /// (found when the recording started).
    pub source: StateSource,
    /// Who wrote it (`kernel` source): `system` (a process outside the app: lmkd,
    /// system_server, ...) or `app` (the process itself or another process of its app). Only
    /// `system` writes (and the values found at start) move the app's phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_by: Option<Writer>,
    /// The writing process (`kernel` source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_comm: Option<String>,
}

impl AppState {
    /// Does this score count as the app's state? Written by the system, or found at start
    /// (the app's own writes are recorded but do not count).
    pub fn counts(&self) -> bool {
        self.written_by != Some(Writer::App)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Lost {
    /// Events lost since the previous `lost` line.
    pub count: u64,
    pub reason: LossReason,
    /// Per-CPU counts for this interval (index = CPU).
    pub per_cpu: Vec<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PhaseChange {
    /// The new phase (the event's own `phase` field says the same).
    pub to: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Phase>,
    /// Why: `app_state` (a system-written oom_score_adj band; a relaunch too), `main_exited`
    /// (the process hosting the app's screen ended), `all_exited` (the app's last process
    /// ended), `marker`, `start`.
    pub reason: PhaseReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `main_exited` / `all_exited`: how the process ended: `killed` (by `signal`),
    /// `exited` (with `exit_code`) or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<ExitHow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Marker {
    pub label: String,
}

pub mod rfc3339_nanos {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Nanos, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        // Parsed from the borrowed text where the input allows it: no copy per event.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Name of a (positive) errno value, e.g. 111 -> "ECONNREFUSED".
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        28 => "ENOSPC",
        30 => "EROFS",
        36 => "ENAMETOOLONG",
        40 => "ELOOP",
        88 => "ENOTSOCK",
        93 => "EPROTONOSUPPORT",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        106 => "EISCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

/// `Some(name)` for a negative syscall result.
pub fn error_of(result: i32) -> Option<String> {
    (result < 0).then(|| errno_name(-result))
}
