//! The reader's throughput on one core: recorded ring-buffer records of workload (a) (open,
//! read, close of one file, unpaced) through the same path the record loop takes
//! (`Capture::ingest`: decode, enrich, phase, session writer), into a real events.jsonl.
//!
//! `cargo test --release -p monitor --bin emuwatch -- --ignored reader_throughput --nocapture`
//! (`EMUWATCH_BENCH_EVENTS` sets the number of events, default 2,000,000.)
use std::{collections::HashMap, sync::Arc, time::Instant};

use monitor_common::{
    Event as KEvent, Header,
    file::{FLUSH_CLOSE, FileOpen, FileRead, PATH_LEN, PATH_OK, SYS_OPENAT},
    kind,
};

use crate::{
    capture::Capture,
    enrich::{
        Enricher,
        android::PackagesList,
        files::DevicePatterns,
        live_proc::{ProcSource, Recorded},
        process::ProcessTable,
    },
    geo::Geo,
    live::LiveView,
    session::{SessionInfo, SessionWriter},
};

const PID: u32 = 4_000_000_001;

const INFO: &str = r##"{"schema_version":1,"tool":"emuwatch","tool_version":"0.1.0",
    "kernel":{"release":"6.1","version":"#1","machine":"x86_64"},"hostname":"h",
    "started_at":"2026-11-20T10:00:00.000000000Z","target":{},"probes":[],"events":{},
    "events_total":0,"lost":{"total":0,"by_reason":{},"per_cpu":[],"undecodable":0},
    "complete":true,"ring_buffer_bytes":8388608}"##;

fn bytes_of<T>(v: &T) -> Vec<u8> {
    // SAFETY: plain #[repr(C)] data, read as bytes as the ring buffer holds it.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
        .to_vec()
}

fn header(kind: u32, ts_ns: u64) -> Header {
    let mut comm = [0u8; 16];
    // The kernel keeps 15 bytes of the name.
    comm[..15].copy_from_slice(b"emuwatch-benchl");
    Header {
        kind,
        tid: PID,
        tgid: PID,
        uid: 0,
        gid: 0,
        _pad: 0,
        ts_ns,
        cgroup_id: 1,
        comm,
    }
}

/// The two records one iteration of workload (a) puts in the ring: the open (path copied at
/// entry) and the read total at close.
pub(crate) fn workload_a_records(iterations: usize) -> Vec<Vec<u8>> {
    let file = b"/tmp/emuwatch-bench.abc123/data.txt";
    let mut path = [0u8; PATH_LEN];
    path[..file.len()].copy_from_slice(file);
    let mut out = Vec::with_capacity(iterations * 2);
    for i in 0..iterations as u64 {
        let open = KEvent {
            header: header(kind::FILE_OPEN, 1_000_000_000 + i * 1_500),
            payload: FileOpen {
                result: 3,
                dfd: monitor_common::file::AT_FDCWD,
                flags: 0o2000000, // O_RDONLY | O_CLOEXEC, as File::open passes
                path_len: file.len() as u32 + 1,
                syscall: SYS_OPENAT,
                path_status: PATH_OK,
                _pad: [0; 6],
                user_path: 0x7fff_0000_1000,
                path,
            },
        };
        let read = KEvent {
            header: header(kind::FILE_READ, 1_000_000_700 + i * 1_500),
            payload: FileRead {
                fd: 3,
                reason: FLUSH_CLOSE,
                _pad: [0; 3],
                bytes: 100,
                reads: 1,
            },
        };
        out.push(bytes_of(&open));
        out.push(bytes_of(&read));
    }
    out
}

/// A capture stage writing to `dir`, with the answers /proc would give for the bench process.
pub(crate) fn capture_into(dir: &std::path::Path) -> Capture {
    let recorded = Recorded {
        argv0: HashMap::from([(PID, "emuwatch-benchload".to_string())]),
        ppid: HashMap::from([(PID, 1)]),
        cwd: HashMap::from([(PID, "/tmp".to_string())]),
        oom_score_adj: HashMap::from([(PID, 0)]),
        ..Recorded::default()
    };
    let enricher = Enricher::new(
        ProcessTable::new(PackagesList::default()),
        DevicePatterns::new(&[]).unwrap(),
        Geo::default(),
        1_764_000_000_000_000_000,
    )
    .with_proc_source(ProcSource::Recorded(Arc::new(recorded)));
    let info: SessionInfo = serde_json::from_str(INFO).unwrap();
    let writer = SessionWriter::create(dir, info).unwrap();
    Capture::without_kernel(enricher, writer, LiveView::new(true))
}

#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn reader_throughput() {
    let events: usize = std::env::var("EMUWATCH_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let records = workload_a_records(events / 2);
    println!(
        "reader_throughput: Event {} bytes, Raw {} bytes",
        std::mem::size_of::<crate::event::Event>(),
        std::mem::size_of::<crate::decode::Raw>()
    );
    let mut best = f64::INFINITY;
    for rep in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let mut capture = capture_into(&dir);
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        // As the record loop does: drain a batch of records, then flush.
        for batch in records.chunks(4096) {
            for r in batch {
                capture.ingest(r).unwrap();
            }
            capture.writer.flush().unwrap();
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_time() - cpu0;
        let info = capture.writer.finish().unwrap();
        let bytes = std::fs::metadata(dir.join("events.jsonl")).unwrap().len();
        // Every record became a line (plus the first-seen app_state line).
        assert_eq!(info.events_total, records.len() as u64 + 1);
        let rate = records.len() as f64 / wall;
        best = best.min(wall);
        println!(
            "reader_throughput rep {rep}: {} records in {wall:.3} s wall, {cpu:.3} s CPU: {:.0} events/s, {:.0} ns/event, {:.1} MB written",
            records.len(),
            rate,
            wall * 1e9 / records.len() as f64,
            bytes as f64 / 1e6
        );
    }
    println!(
        "reader_throughput best: {:.0} events/s ({:.0} ns/event)",
        records.len() as f64 / best,
        best * 1e9 / records.len() as f64
    );
}

/// This thread's CPU time (user + system), seconds.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
