//! The in-kernel target decision. Every probe of a task that is not a target returns after
//! one array load (`maybe_target`); a possible target costs one hash lookup more.
use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_uid_gid};
use monitor_common::{COMM_LEN, PER_USER_RANGE, TARGET_FILTER_SLOTS, config, tgid_role};

use crate::maps::{
    RESOLVER_COMMS, TARGET_APP_IDS, TARGET_CGROUPS, TARGET_COMMS, TARGET_FILTER, TARGET_TGIDS,
    TARGET_UIDS, config,
};

/// Is `tgid`'s entry in `TARGET_TGIDS` a target's (not a resolver's)?
#[inline(always)]
fn in_target_map(tgid: u32) -> bool {
    unsafe { TARGET_TGIDS.get(&tgid) }.is_some_and(|r| *r & tgid_role::TARGET != 0)
}

/// Is the current task (`tgid`, `uid`) a target? A task matched by uid, comm or cgroup has its
/// tgid added to `TARGET_TGIDS`, so it stays a target after exec and its children inherit.
#[inline(always)]
pub fn is_target(tgid: u32, uid: u32) -> bool {
    is_target_with(tgid, || uid)
}

/// `is_target` for the current task, fetching its uid only if uid targets are configured.
#[inline(always)]
pub fn is_current_target(tgid: u32) -> bool {
    is_target_with(tgid, || bpf_get_current_uid_gid() as u32)
}

/// Could `tgid` be a target? False means certainly not (or `--all`, which says true): the
/// first check of every probe, one array load.
#[inline(always)]
pub fn maybe_target(tgid: u32) -> bool {
    config(config::TARGET_ALL) != 0
        || TARGET_FILTER
            .get(tgid % TARGET_FILTER_SLOTS)
            .is_some_and(|v| *v != 0)
}

/// Open `tgid`'s pre-filter slot (a stale slot only costs a hash lookup).
#[inline(always)]
pub fn open_filter_slot(tgid: u32) {
    if let Some(slot) = TARGET_FILTER.get_ptr_mut(tgid % TARGET_FILTER_SLOTS) {
        // A plain store of 1: concurrent writers store the same value.
        unsafe { *slot = 1 };
    }
}

/// Add `tgid` to the targets (and its pre-filter slot).
#[inline(always)]
fn insert_target(tgid: u32) -> bool {
    open_filter_slot(tgid);
    TARGET_TGIDS.insert(&tgid, &tgid_role::TARGET, 0).is_ok()
}

/// Are targets chosen by uid (`--uid`, `--package`)? Then a uid change can make a target.
#[inline(always)]
pub fn have_uid_targets() -> bool {
    config(config::HAVE_UIDS) != 0 || config(config::HAVE_APP_IDS) != 0
}

/// Is `uid` a target uid: listed itself, or (`--package`) its Android app id in any user.
#[inline(always)]
fn uid_is_target(uid: u32) -> bool {
    (config(config::HAVE_UIDS) != 0 && unsafe { TARGET_UIDS.get(&uid) }.is_some())
        || (config(config::HAVE_APP_IDS) != 0
            && unsafe { TARGET_APP_IDS.get(&(uid % PER_USER_RANGE)) }.is_some())
}

/// Is `tgid` in the target set already (not counting uid/comm/cgroup matches to come)?
#[inline(always)]
pub fn is_known_target(tgid: u32) -> bool {
    config(config::TARGET_ALL) != 0 || (maybe_target(tgid) && in_target_map(tgid))
}

#[inline(always)]
fn is_target_with(tgid: u32, uid: impl FnOnce() -> u32) -> bool {
    if maybe_target(tgid) && in_target_map(tgid) {
        return true;
    }
    if config(config::SELF_TGID) == tgid as u64 {
        return false;
    }
    if config(config::TARGET_ALL) != 0 {
        return true;
    }
    let hit = (have_uid_targets() && uid_is_target(uid()))
        || (config(config::HAVE_COMMS) != 0
            && bpf_get_current_comm().is_ok_and(|c| unsafe { TARGET_COMMS.get(&c) }.is_some()))
        || (config(config::HAVE_CGROUPS) != 0
            && unsafe { TARGET_CGROUPS.get(&bpf_get_current_cgroup_id()) }.is_some());
    if hit {
        let _ = insert_target(tgid);
    }
    hit
}

/// Is `tgid` (some other process, e.g. the subject of an oom_score_adj update) a target?
#[inline(always)]
pub fn is_target_tgid(tgid: u32) -> bool {
    maybe_target(tgid) && (config(config::TARGET_ALL) != 0 || in_target_map(tgid))
}

/// Is `tgid` a resolver process that is not a target (only its DNS messages are copied)?
/// Asked only after the target check said no; other processes stop at the pre-filter.
#[inline(always)]
pub fn is_resolver(tgid: u32) -> bool {
    maybe_target(tgid)
        && unsafe { TARGET_TGIDS.get(&tgid) }.is_some_and(|r| *r == tgid_role::RESOLVER)
}

/// A process that is not a target took the name `comm` (exec or rename): it is a resolver
/// from now on if the name is one of `--resolver`'s, and stops being one otherwise. Exec and
/// rename are rare: the name lookup costs nothing that matters.
#[inline(always)]
pub fn name_resolver(tgid: u32, comm: &[u8; COMM_LEN]) {
    if config(config::HAVE_RESOLVERS) == 0 {
        return;
    }
    if unsafe { RESOLVER_COMMS.get(comm) }.is_some() {
        open_filter_slot(tgid);
        let _ = TARGET_TGIDS.insert(&tgid, &tgid_role::RESOLVER, 0);
    } else if is_resolver(tgid) {
        let _ = TARGET_TGIDS.remove(&tgid);
    }
}

/// A process that is not a target exited: forget it if it was a resolver (its tgid may be
/// reused by another process).
#[inline(always)]
pub fn forget_resolver(tgid: u32) {
    if is_resolver(tgid) {
        let _ = TARGET_TGIDS.remove(&tgid);
    }
}

/// Make `tgid` a target (a child forked by a target). Not needed with `--all`.
#[inline(always)]
pub fn adopt(tgid: u32) -> bool {
    if config(config::TARGET_ALL) != 0 {
        return true;
    }
    insert_target(tgid)
}

#[inline(always)]
pub fn forget(tgid: u32) {
    let _ = TARGET_TGIDS.remove(&tgid);
}
