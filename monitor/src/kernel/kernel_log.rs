//! `--kernel-log`: the kernel programs' own diagnostics of what they could not capture exactly
//! (a path not copied, a binder parcel not copied, an event lost and why), read from aya-log's
//! ring buffer into `kernel.log` in the session directory and, unless `--quiet`, to stderr.
//!
//! Off (the default), the programs are loaded with `AYA_LOG_LEVEL = 0`: a read-only global the
//! verifier knows, so every log call is dead code it removes before the program runs
//! (docs/kernel-log.md has the measurement). The loss counters, `path_origin` and the other
//! schema fields stay the record of what was lost; the log says where and why.
use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, Result};
use aya_log::EbpfLogger;

/// The level the programs are loaded with: everything up to debug when on, nothing when off.
pub fn level(on: bool) -> u8 {
    if on { aya_log::Level::Debug as u8 } else { 0 }
}

/// Where the kernel's log records go.
pub struct KernelLog {
    file: Mutex<File>,
    echo: bool,
    /// The schema's name of a loss counter slot (`LossReason`, given by the caller: the
    /// vocabulary sits above the kernel layer).
    loss_name: fn(u32) -> Option<&'static str>,
}

/// How the programs' `count_loss` words a loss (monitor-ebpf `maps.rs`).
const LOSS_PREFIX: &str = "event lost: loss slot ";

/// The file name in the session directory.
pub const FILE: &str = "kernel.log";

impl log::Log for KernelLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        // The arguments are numbers the programs wrote; escaped anyway (nothing from the
        // monitored app is ever formatted into a kernel log record).
        let mut text = crate::escape::escape(&record.args().to_string());
        // The programs name a loss by its counter slot; the log names it as the schema does.
        if let Some(n) = text
            .strip_prefix(LOSS_PREFIX)
            .and_then(|n| n.parse::<u32>().ok())
            && let Some(name) = (self.loss_name)(n)
        {
            text = format!("event lost: {name}");
        }
        let line = format!(
            "{} {} {text}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            record.level()
        );
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
        if self.echo {
            eprintln!("emuwatch: kernel: {} {text}", record.level());
        }
    }

    fn flush(&self) {}
}

/// Start reading the programs' log records (the `AYA_LOGS` ring buffer) into `dir/kernel.log`.
pub fn start(
    ebpf: &mut aya::Ebpf,
    dir: &Path,
    echo: bool,
    loss_name: fn(u32) -> Option<&'static str>,
) -> Result<EbpfLogger<KernelLog>> {
    let path: PathBuf = dir.join(FILE);
    let file = crate::safefs::create_new_private(&path)
        .with_context(|| format!("create {}", path.display()))?;
    EbpfLogger::init_with_logger(
        ebpf,
        KernelLog {
            file: Mutex::new(file),
            echo,
            loss_name,
        },
    )
    .map_err(|e| anyhow::anyhow!("--kernel-log: {e}"))
}
