//! Byte offsets of struct members in the running kernel, read from `/sys/kernel/btf/vmlinux`.
//! aya-ebpf has no CO-RE relocations and aya 0.14's `Btf` does not expose struct members, so
//! the few offsets the BTF tracepoint programs need are found here and frozen into .rodata.
//! (btf-rs could do this, but it is LGPL; 60 lines of reading a documented format is cheaper.)

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn cstr_at(b: &[u8], o: usize) -> Option<&str> {
    let s = b.get(o..)?;
    let n = s.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&s[..n]).ok()
}

/// One type of a raw BTF blob. Type ids start at 1 (`types[0]` is id 1).
struct Type<'a> {
    kind: u32,
    name: Option<&'a str>,
    vlen: usize,
    kflag: bool,
    /// `size` or `type`, by kind.
    size_or_type: u32,
    /// The kind-specific data that follows the common header.
    data: &'a [u8],
}

const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC_PROTO: u32 = 13;

/// Every type of a raw BTF blob (little-endian only), in id order.
fn types(btf: &[u8]) -> Option<Vec<Type<'_>>> {
    if btf.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let str_off = u32_at(btf, 16)? as usize;
    let types = btf.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strs = btf.get(hdr_len + str_off..)?;
    let mut out = Vec::new();
    let mut o = 0usize;
    while o + 12 <= types.len() {
        let name_off = u32_at(types, o)? as usize;
        let info = u32_at(types, o + 4)?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        o += 12;
        // Size of the data that follows each kind's common header (kernel Documentation/bpf/btf.rst).
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        out.push(Type {
            kind,
            name: (name_off != 0).then(|| cstr_at(strs, name_off)).flatten(),
            vlen,
            kflag: info >> 31 == 1,
            size_or_type: u32_at(types, o - 4)?,
            data: types.get(o..o + extra)?,
        });
        o += extra;
    }
    Some(out)
}

/// A raw BTF blob with its types read once (reading the kernel's ~6 MB takes tens of ms).
pub struct Vmlinux<'a> {
    raw: &'a [u8],
    types: Vec<Type<'a>>,
}

impl<'a> Vmlinux<'a> {
    pub fn parse(raw: &'a [u8]) -> Option<Vmlinux<'a>> {
        Some(Vmlinux {
            raw,
            types: types(raw)?,
        })
    }

    /// Byte offset of top-level `member` of `struct strukt`.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Option<u32> {
        let btf = self.raw;
        let hdr_len = u32_at(btf, 4)? as usize;
        let strs = btf.get(hdr_len + u32_at(btf, 16)? as usize..)?;
        struct_member_offset(&self.types, strs, strukt, member)
    }

    /// How many arguments the BTF tracepoint `name` passes (its `btf_trace_<name>` typedef is
    /// a pointer to a function whose first parameter is the tracepoint's private data).
    pub fn tracepoint_args(&self, name: &str) -> Option<usize> {
        let all = &self.types;
        let typedef = format!("btf_trace_{name}");
        let by_id = |id: u32| all.get((id as usize).checked_sub(1)?);
        let t = all
            .iter()
            .find(|t| t.kind == KIND_TYPEDEF && t.name == Some(typedef.as_str()))?;
        let ptr = by_id(t.size_or_type).filter(|p| p.kind == KIND_PTR)?;
        let proto = by_id(ptr.size_or_type).filter(|p| p.kind == KIND_FUNC_PROTO)?;
        proto.vlen.checked_sub(1)
    }
}

/// Byte offset of top-level `member` of `struct strukt` in raw BTF (little-endian only).
#[cfg(test)]
pub fn member_offset(btf: &[u8], strukt: &str, member: &str) -> Option<u32> {
    Vmlinux::parse(btf)?.member_offset(strukt, member)
}

fn struct_member_offset(all: &[Type], strs: &[u8], strukt: &str, member: &str) -> Option<u32> {
    let t = all
        .iter()
        .find(|t| t.kind == KIND_STRUCT && t.name == Some(strukt))?;
    (0..t.vlen).find_map(|i| {
        let m = 12 * i;
        let mname = u32_at(t.data, m)? as usize;
        let moff = u32_at(t.data, m + 8)?;
        (cstr_at(strs, mname) == Some(member)).then(|| {
            let bits = if t.kflag { moff & 0xff_ffff } else { moff };
            bits / 8
        })
    })
}

/// How many arguments the BTF tracepoint `name` passes, in raw BTF.
#[cfg(test)]
pub fn tracepoint_args(btf: &[u8], name: &str) -> Option<usize> {
    Vmlinux::parse(btf)?.tracepoint_args(name)
}

/// The `task_struct` offsets the process probes need.
#[derive(Debug, Clone, Copy)]
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
    pub exit_code: u32,
    /// `task_struct.signal` and `signal_struct.live` (group death on kernels whose
    /// `sched_process_exit` has no `group_dead` argument).
    pub signal: u32,
    pub signal_live: u32,
}

pub fn task_offsets(v: &Vmlinux) -> Option<TaskOffsets> {
    Some(TaskOffsets {
        pid: v.member_offset("task_struct", "pid")?,
        tgid: v.member_offset("task_struct", "tgid")?,
        exit_code: v.member_offset("task_struct", "exit_code")?,
        signal: v.member_offset("task_struct", "signal")?,
        signal_live: v.member_offset("signal_struct", "live")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_btf() {
        assert_eq!(
            member_offset(b"not btf at all, really", "task_struct", "pid"),
            None
        );
        assert_eq!(member_offset(b"", "task_struct", "pid"), None);
    }

    #[test]
    fn finds_task_struct_on_this_kernel() {
        let Ok(vmlinux) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            panic!(
                "/sys/kernel/btf/vmlinux is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)"
            );
        };
        let off = task_offsets(&Vmlinux::parse(&vmlinux).expect("parse"))
            .expect("task_struct pid/tgid/exit_code in BTF");
        // pid and tgid are adjacent pid_t members of task_struct.
        assert_eq!(off.tgid, off.pid + 4);
        assert!(off.exit_code > 0);
        assert!(off.signal > 0);
    }

    #[test]
    fn reads_tracepoint_prototypes_on_this_kernel() {
        let vmlinux = std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
        // sched_process_fork(parent, child) on every kernel with BTF.
        assert_eq!(tracepoint_args(&vmlinux, "sched_process_fork"), Some(2));
        // sched_process_exit(p[, group_dead]): one argument before ~6.16, two after.
        let n = tracepoint_args(&vmlinux, "sched_process_exit").expect("sched_process_exit");
        assert!(n == 1 || n == 2, "{n}");
        assert_eq!(tracepoint_args(&vmlinux, "no_such_tracepoint"), None);
    }

    /// The fixed `pt_regs` offsets of the raw-syscalls path, checked against this kernel.
    #[test]
    fn pt_regs_offsets_match_this_kernel() {
        let vmlinux = std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
        let t = monitor_common::syscall::table_for(std::env::consts::ARCH).expect("table");
        let names: &[&str] = match std::env::consts::ARCH {
            "x86_64" => &["di", "si", "dx", "r10", "r8", "r9"],
            a => panic!("no pt_regs check for {a}"),
        };
        for (i, n) in names.iter().enumerate() {
            assert_eq!(
                member_offset(&vmlinux, "pt_regs", n),
                Some(t.regs.args[i]),
                "{n}"
            );
        }
        assert_eq!(
            member_offset(&vmlinux, "pt_regs", "orig_ax"),
            Some(t.regs.nr)
        );
        // cs sits in an anonymous union on newer kernels; it follows ip.
        let ip = member_offset(&vmlinux, "pt_regs", "ip").expect("ip");
        assert_eq!(ip + 8, t.regs.compat_off);
    }
}
