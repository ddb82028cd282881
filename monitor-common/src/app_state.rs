//! App state payload: `oom/oom_score_adj_update`. Android's ActivityManager moves an app's
//! `oom_score_adj` between bands as it enters and leaves the screen.

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AppState {
    /// The process whose score changed (tracepoint field `pid`); the header is the writer.
    pub target_tgid: u32,
    pub oom_score_adj: i32,
    /// Tracepoint field `comm`: the target process's name.
    pub target_comm: [u8; 16],
}
