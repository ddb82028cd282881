//! App state: oom/oom_score_adj_update, for target processes (whoever writes the score).
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use monitor_common::{app_state::AppState, kind};

use crate::{
    emit::{current, reserve, submit},
    filter::is_target_tgid,
};

/// oom/oom_score_adj_update: `pid`@8, `comm[16]`@12, `short oom_score_adj`@28.
#[tracepoint(category = "oom", name = "oom_score_adj_update")]
pub fn oom_score_adj_update(ctx: TracePointContext) -> u32 {
    let target: i32 = unsafe { ctx.read_at(8) }.unwrap_or(0);
    if !is_target_tgid(target as u32) {
        return 0;
    }
    let adj: i16 = unsafe { ctx.read_at(28) }.unwrap_or(0);
    let comm: [u8; 16] = unsafe { ctx.read_at(12) }.unwrap_or([0; 16]);
    let writer = current();
    if let Some(mut entry) = reserve::<AppState>(kind::APP_STATE, &writer) {
        unsafe {
            (*entry.as_mut_ptr()).payload = AppState {
                target_tgid: target as u32,
                oom_score_adj: adj as i32,
                target_comm: comm,
            };
        }
        submit(entry);
    }
    0
}
