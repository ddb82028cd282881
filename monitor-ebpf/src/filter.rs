//! The in-kernel target decision: one map lookup for the common case, so every probe of a
//! non-target task returns at once.
use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm};
use monitor_common::config;

use crate::maps::{TARGET_CGROUPS, TARGET_COMMS, TARGET_TGIDS, TARGET_UIDS, config};

/// Is the current task (`tgid`, `uid`) a target? A task matched by uid, comm or cgroup has its
/// tgid added to `TARGET_TGIDS`, so it stays a target after exec and its children inherit.
#[inline(always)]
pub fn is_target(tgid: u32, uid: u32) -> bool {
    if unsafe { TARGET_TGIDS.get(&tgid) }.is_some() {
        return true;
    }
    if config(config::SELF_TGID) == tgid as u64 {
        return false;
    }
    if config(config::TARGET_ALL) != 0 {
        return true;
    }
    let hit = (config(config::HAVE_UIDS) != 0 && unsafe { TARGET_UIDS.get(&uid) }.is_some())
        || (config(config::HAVE_COMMS) != 0
            && bpf_get_current_comm().is_ok_and(|c| unsafe { TARGET_COMMS.get(&c) }.is_some()))
        || (config(config::HAVE_CGROUPS) != 0
            && unsafe { TARGET_CGROUPS.get(&bpf_get_current_cgroup_id()) }.is_some());
    if hit {
        let _ = TARGET_TGIDS.insert(&tgid, &1, 0);
    }
    hit
}

/// Is `tgid` (some other process, e.g. the subject of an oom_score_adj update) a target?
#[inline(always)]
pub fn is_target_tgid(tgid: u32) -> bool {
    config(config::TARGET_ALL) != 0 || unsafe { TARGET_TGIDS.get(&tgid) }.is_some()
}

/// Make `tgid` a target (a child forked by a target). Not needed with `--all`.
#[inline(always)]
pub fn adopt(tgid: u32) -> bool {
    if config(config::TARGET_ALL) != 0 {
        return true;
    }
    TARGET_TGIDS.insert(&tgid, &1, 0).is_ok()
}

#[inline(always)]
pub fn forget(tgid: u32) {
    let _ = TARGET_TGIDS.remove(&tgid);
}
