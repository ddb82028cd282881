//! The closed sets of values that events carry (connect protocol, where a path came from, why
//! a read total was taken, device operations, loss reasons, ...): enums whose serde names are
//! the strings of the schema (docs/events.md).
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
    /// `connect`: a `host` from DNS that a resolver process (`--resolver`, Android's netd)
    /// received, not the app itself.
    HostVia {
        /// The resolver's answer for a name this app asked it for over dnsproxyd.
        Dnsproxyd => "dnsproxyd",
        /// A resolver's answer for the address, for a name this app was not seen asking for.
        Resolver => "resolver",
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
        /// A DNS message of a resolver process that is not a target (`--resolver`).
        Resolver => "resolver",
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
