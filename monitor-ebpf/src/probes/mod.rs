//! One module per probe family; each holds that family's programs and nothing else.
//! Tracepoint field offsets come from `/sys/kernel/tracing/events/<category>/<name>/format`.
pub mod app_state;
pub mod binder;
pub mod connect;
pub mod device;
pub mod file;
pub mod process;
pub mod raw_syscalls;
