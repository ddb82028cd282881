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

/// Byte offset of top-level `member` of `struct strukt` in raw BTF (little-endian only).
pub fn member_offset(btf: &[u8], strukt: &str, member: &str) -> Option<u32> {
    if btf.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let str_off = u32_at(btf, 16)? as usize;
    let types = btf.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strs = btf.get(hdr_len + str_off..)?;
    let mut o = 0usize;
    while o + 12 <= types.len() {
        let name_off = u32_at(types, o)? as usize;
        let info = u32_at(types, o + 4)?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kflag = info >> 31 == 1;
        o += 12;
        // Size of the data that follows each kind's common header (kernel Documentation/bpf/btf.rst).
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        if kind == 4 && cstr_at(strs, name_off) == Some(strukt) {
            for i in 0..vlen {
                let m = o + 12 * i;
                let mname = u32_at(types, m)? as usize;
                let moff = u32_at(types, m + 8)?;
                if cstr_at(strs, mname) == Some(member) {
                    let bits = if kflag { moff & 0xff_ffff } else { moff };
                    return Some(bits / 8);
                }
            }
        }
        o += extra;
    }
    None
}

/// The `task_struct` offsets the process probes need.
#[derive(Debug, Clone, Copy)]
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
    pub exit_code: u32,
}

pub fn task_offsets(vmlinux: &[u8]) -> Option<TaskOffsets> {
    Some(TaskOffsets {
        pid: member_offset(vmlinux, "task_struct", "pid")?,
        tgid: member_offset(vmlinux, "task_struct", "tgid")?,
        exit_code: member_offset(vmlinux, "task_struct", "exit_code")?,
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
        let off = task_offsets(&vmlinux).expect("task_struct pid/tgid/exit_code in BTF");
        // pid and tgid are adjacent pid_t members of task_struct.
        assert_eq!(off.tgid, off.pid + 4);
        assert!(off.exit_code > 0);
    }
}
