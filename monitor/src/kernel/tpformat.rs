//! Field offsets of a tracepoint, read from its `format` file in tracefs. Used for tracepoints
//! whose layout differs between kernels (binder on Android); the base probe set uses the stable
//! `syscalls/*`, `sched/*` and `oom/*` layouts documented in the eBPF sources.
use std::{collections::HashMap, path::Path};

/// `name -> offset` for every `field:TYPE NAME; offset:N; ...` line.
pub fn parse(format: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for line in format.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let (Some(decl), Some(off)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(name) = decl.split_whitespace().last() else {
            continue;
        };
        // Arrays are declared `char comm[16]`: the field name is before the bracket.
        let name = name.split('[').next().unwrap_or(name);
        if let Some(Ok(off)) = off.strip_prefix("offset:").map(str::parse::<u32>) {
            out.insert(name.to_string(), off);
        }
    }
    out
}

pub fn read(tracefs: &Path, category: &str, name: &str) -> Option<HashMap<String, u32>> {
    let text = std::fs::read_to_string(
        tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format"),
    )
    .ok()?;
    Some(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    // binder_transaction as an Android (GKI 5.10) kernel prints it.
    const BINDER: &str = "name: binder_transaction
ID: 1026
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int debug_id;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int target_node;\toffset:12;\tsize:4;\tsigned:1;
\tfield:int to_proc;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int to_thread;\toffset:20;\tsize:4;\tsigned:1;
\tfield:int reply;\toffset:24;\tsize:4;\tsigned:1;
\tfield:unsigned int code;\toffset:28;\tsize:4;\tsigned:0;
\tfield:unsigned int flags;\toffset:32;\tsize:4;\tsigned:0;

print fmt: \"transaction=%d dest_node=%d dest_proc=%d dest_thread=%d reply=%d flags=0x%x code=0x%x\"";

    #[test]
    fn parses_binder_transaction() {
        let f = parse(BINDER);
        assert_eq!(f["to_proc"], 16);
        assert_eq!(f["reply"], 24);
        assert_eq!(f["code"], 28);
        assert_eq!(f["common_pid"], 4);
    }

    /// The fixed offsets monitor-ebpf reads must be what this kernel's format files say.
    #[test]
    fn ebpf_offsets_match_this_kernel() {
        let tracefs = crate::kernel::system::ensure_tracefs()
            .expect("tracefs (run as root)")
            .0;
        type Fields = &'static [(&'static str, u32)];
        let expect: &[(&str, &str, Fields)] = &[
            (
                "oom",
                "oom_score_adj_update",
                &[("pid", 8), ("comm", 12), ("oom_score_adj", 28)],
            ),
            (
                "sched",
                "sched_process_exec",
                &[("filename", 8), ("pid", 12), ("old_pid", 16)],
            ),
            (
                "syscalls",
                "sys_enter_connect",
                &[("fd", 16), ("uservaddr", 24), ("addrlen", 32)],
            ),
            ("syscalls", "sys_exit_connect", &[("ret", 16)]),
            ("syscalls", "sys_exit_setuid", &[("ret", 16)]),
            ("syscalls", "sys_exit_setreuid", &[("ret", 16)]),
            ("syscalls", "sys_exit_setresuid", &[("ret", 16)]),
            (
                "syscalls",
                "sys_enter_openat",
                &[("dfd", 16), ("filename", 24), ("flags", 32)],
            ),
            (
                "syscalls",
                "sys_enter_openat2",
                &[("dfd", 16), ("filename", 24), ("how", 32)],
            ),
            (
                "syscalls",
                "sys_enter_open",
                &[("filename", 16), ("flags", 24)],
            ),
            ("syscalls", "sys_exit_openat", &[("ret", 16)]),
            ("syscalls", "sys_enter_chdir", &[("filename", 16)]),
            ("syscalls", "sys_enter_fchdir", &[("fd", 16)]),
            ("syscalls", "sys_enter_read", &[("fd", 16)]),
            ("syscalls", "sys_enter_pread64", &[("fd", 16)]),
            ("syscalls", "sys_enter_readv", &[("fd", 16)]),
            ("syscalls", "sys_enter_preadv", &[("fd", 16)]),
            ("syscalls", "sys_enter_preadv2", &[("fd", 16)]),
            ("syscalls", "sys_exit_read", &[("ret", 16)]),
            ("syscalls", "sys_enter_close", &[("fd", 16)]),
            ("syscalls", "sys_enter_ioctl", &[("fd", 16), ("cmd", 24)]),
            ("syscalls", "sys_exit_ioctl", &[("ret", 16)]),
        ];
        for (cat, name, fields) in expect {
            let f =
                read(&tracefs, cat, name).unwrap_or_else(|| panic!("{cat}/{name}: no format file"));
            for (field, off) in *fields {
                assert_eq!(f.get(*field), Some(off), "{cat}/{name} field {field}");
            }
        }
    }
}
