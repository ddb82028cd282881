//! Fuzz targets that run on stable (proptest): every parser of outside input gets random and
//! mutated input and must return (`Ok` or `Err`), never panic or hang. `scripts/fuzz.sh SECS`
//! runs each target for SECS seconds (`EMUWATCH_FUZZ_SECS`); a plain `cargo test` runs each
//! for 256 cases. docs/fuzzing.md records the last long run. A crash found becomes a
//! regression test next to the code it crashed.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

/// Run `f` on values of `strategy`: for `EMUWATCH_FUZZ_SECS` seconds when set, else 256 cases.
pub fn run<S: Strategy>(name: &str, strategy: S, f: impl Fn(S::Value)) {
    let secs: u64 = std::env::var("EMUWATCH_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t = Instant::now();
    let mut cases = 0u64;
    loop {
        let config = Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let r = runner.run(&strategy, |v| {
            f(v);
            Ok(())
        });
        if let Err(e) = r {
            panic!("fuzz {name}: {e}");
        }
        cases += 256;
        if Instant::now() >= deadline {
            break;
        }
    }
    if secs > 0 {
        eprintln!(
            "fuzz {name}: {cases} cases in {:.0} s, no failure",
            t.elapsed().as_secs_f64()
        );
    }
}

/// `seed` with up to 12 random edits (replace, insert or delete a byte).
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 0..12).prop_map(move |edits| {
        let mut b = seed.clone();
        for (at, op, byte) in edits {
            let i = if b.is_empty() { 0 } else { at % (b.len() + 1) };
            match op {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i, byte),
                _ if i < b.len() => {
                    b.remove(i);
                }
                _ => b.push(byte),
            }
        }
        b
    })
}

/// Random text, or a mutation of one of `seeds`.
fn text(seeds: &[&str]) -> BoxedStrategy<String> {
    let mut options: Vec<BoxedStrategy<String>> = vec![any::<String>().boxed()];
    for s in seeds {
        options.push(
            mutated(s.as_bytes().to_vec())
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn repo(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)).unwrap()
}

#[test]
fn fuzz_scenario_parser() {
    let seeds = [
        repo("scenarios/demo.toml"),
        repo("scenarios/android-background.toml"),
    ];
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    run("scenario parser", text(&seeds), |t| {
        let _ = crate::scenario::Scenario::parse(&t, Path::new("fuzz.toml"));
    });
}

#[test]
fn fuzz_session_reader() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sessions/spyapp");
    let info = std::fs::read(dir.join("session.json")).unwrap();
    let events = std::fs::read(dir.join("events.jsonl")).unwrap();
    let strategy = (
        prop_oneof![Just(info.clone()), mutated(info)],
        prop_oneof![mutated(events), any::<Vec<u8>>()],
    );
    run("session reader", strategy, |(i, e)| {
        let _ = crate::session::parse(
            &i,
            &e,
            Path::new("session.json"),
            Path::new("events.jsonl"),
            false,
        );
    });
}

#[test]
fn fuzz_packages_list_parser() {
    let seed = "com.example.app 10123 0 /data/user/0/com.example.app default:targetSdkVersion=34 3003,3002 0 1\ncom.android.shell 2000 0 /data/user_de/0/com.android.shell platform:privapp none 0 1\n";
    run("packages.list parser", text(&[seed]), |t| {
        if let Ok(pl) = crate::enrich::android::PackagesList::parse(&t) {
            let _ = pl.uid_of("com.example.app");
            let _ = pl.package_of_uid(10123);
        }
    });
}

#[test]
fn fuzz_tracepoint_format_parser() {
    let seed = "name: binder_transaction\nID: 1234\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int debug_id;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int target_node;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;\n\nprint fmt: \"transaction=%d\", REC->debug_id\n";
    run("tracepoint format parser", text(&[seed]), |t| {
        let _ = crate::kernel::tpformat::parse(&t);
    });
}

#[test]
fn fuzz_btf_parser() {
    // The running kernel's BTF (cut to its first 256 KiB to keep cases fast: the type walk
    // meets the cut as a damaged file would), else a small header.
    let mut seed = std::fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    seed.truncate(256 << 10);
    if seed.len() < 24 {
        seed = vec![
            0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
    }
    let strategy = prop_oneof![
        mutated(seed.clone()),
        (0..seed.len()).prop_map(move |n| seed[..n].to_vec()),
        any::<Vec<u8>>(),
    ];
    run("BTF parser", strategy, |b| {
        let _ = crate::kernel::btf::member_offset(&b, "task_struct", "pid");
        let _ = crate::kernel::btf::tracepoint_args(&b, "sched_process_exit");
        if let Some(v) = crate::kernel::btf::Vmlinux::parse(&b) {
            let _ = v.member_offset("task_struct", "real_parent");
            let _ = v.tracepoint_args("sched_process_fork");
            let _ = crate::kernel::btf::task_offsets(&v);
        }
    });
}

/// Fuzz target: sequences of kernel records with random payloads (valid headers of every
/// kind, random tgids among a few, random bytes after them, or random bytes altogether)
/// through the decoder and the enricher: no panic, whatever the kernel side sent.
#[test]
fn fuzz_kernel_record_decoder_and_enricher() {
    use crate::enrich::{
        live_proc::Recorded,
        tests::{APP, CHILD, enricher, header},
    };
    let record = prop_oneof![
        (
            0u32..14,
            prop_oneof![Just(APP), Just(CHILD), Just(1u32), any::<u32>()],
            prop::collection::vec(any::<u8>(), 0..400),
        )
            .prop_map(|(k, tgid, payload)| {
                let mut b = crate::decode::tests::bytes_of(&header(k, tgid, "app"));
                b.extend(payload);
                b
            }),
        prop::collection::vec(any::<u8>(), 0..120),
    ];
    let strategy = prop::collection::vec(record, 1..24);
    run("kernel-record decoder + enricher", strategy, |records| {
        let mut e = enricher(Recorded::default());
        let mut out = Vec::new();
        for r in records {
            if let Ok(raw) = crate::decode::decode(&r) {
                e.enrich(&raw, &mut out);
            }
        }
        for ev in &out {
            let _ = serde_json::to_string(ev).unwrap();
        }
    });
}
