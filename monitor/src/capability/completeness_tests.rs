//! A capability is complete: adding one to `SPECS` without its probe-table rows, its schema
//! doc entry, its report and scenario docs, its finding wording or its count wording fails
//! here. And every program of the eBPF object has exactly one row in the probe table.
use std::{collections::BTreeMap, path::PathBuf};

use super::{Capability, ExpectField, SPECS};
use crate::{
    analysis::{categories::Categories, summary},
    event::{self, AddrFamily, Body, DeviceOp, Event, PathOrigin, Phase, Proto},
    kernel::probes::{Family, PROBES},
    session::SessionInfo,
};

fn doc(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_capability_has_probe_table_rows() {
    for s in &SPECS {
        assert!(!s.families.is_empty(), "{}: no probe family", s.name);
        for fam in s.families {
            assert!(
                PROBES.iter().any(|p| p.family == *fam),
                "{}: no probe of family {fam} in PROBES",
                s.name
            );
        }
    }
    for fam in Family::ALL {
        assert!(
            PROBES.iter().any(|p| p.family == fam),
            "family {fam} has no probe"
        );
    }
}

#[test]
fn every_capability_event_kind_is_in_the_schema_doc() {
    let text = doc("events.md");
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("### ")).collect();
    for s in &SPECS {
        for kind in s.event_kinds {
            let tick = format!("`{kind}`");
            assert!(
                headings.iter().any(|h| h.contains(&tick)),
                "{}: event kind {kind} has no `### ` section in docs/events.md",
                s.name
            );
        }
    }
}

/// The cells of the first table row whose first cell names `first` (`a` / `b` rows name two).
fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells[0].split(" / ").any(|c| c == first))
        .unwrap_or_else(|| panic!("no table row for {first}"))
}

#[test]
fn every_capability_is_in_the_report_and_scenario_docs() {
    let report = doc("report.md");
    let scenarios = doc("scenarios.md");
    let finding_kinds = row(&report, "`kind`")[1];
    let expect_kinds = row(&scenarios, "`kind`")[2];
    for c in Capability::ALL {
        let tick = format!("`{c}`");
        assert!(finding_kinds.contains(&tick), "docs/report.md kind: {c}");
        assert!(expect_kinds.contains(&tick), "docs/scenarios.md kind: {c}");
    }
    // Each expectation field's "applies to" column lists exactly the capabilities taking it.
    for f in ExpectField::ALL {
        let cells = row(&scenarios, &format!("`{}`", f.name()));
        let mut documented: Vec<&str> = cells[1].split(',').map(str::trim).collect();
        documented.sort_unstable();
        let mut declared: Vec<&str> = Capability::taking(f).iter().map(|c| c.as_str()).collect();
        declared.sort_unstable();
        assert_eq!(documented, declared, "docs/scenarios.md: `{}`", f.name());
    }
}

/// One event showing `c`, in the closed phase. A new capability needs one here.
fn sample(c: Capability) -> Body {
    let device = || event::Device::new(DeviceOp::Open, Some(format!("/dev/{c}0")), 3);
    let service = || event::Device {
        interface: Some("android.content.IClipboard".into()),
        method: Some("getPrimaryClip".into()),
        code: Some(4),
        service: Some("clipboard".into()),
        ..event::Device::new(
            DeviceOp::ServiceCall,
            Some("binder:clipboard/android.content.IClipboard.getPrimaryClip".into()),
            0,
        )
    };
    match c {
        Capability::Connect => Body::Connect(event::Connect {
            family: AddrFamily::Inet,
            proto: Proto::Tcp,
            daddr: "192.0.2.1".parse().unwrap(),
            dport: 443,
            result: 0,
            error: None,
            scope: Some(crate::geo::Scope::Documentation),
            country: None,
            asn: None,
            as_org: None,
            conn_id: None,
            host: None,
            host_source: None,
            host_via: None,
        }),
        Capability::Camera => Body::Camera(device()),
        Capability::Microphone => Body::Microphone(device()),
        Capability::Location
        | Capability::DeviceIdentifier
        | Capability::Clipboard
        | Capability::Contacts
        | Capability::InstalledApps
        | Capability::Wifi
        | Capability::Accounts => Body::of_device(c, service()).unwrap(),
        Capability::File => Body::FileOpen(event::FileOpen {
            path: Some("/proc/cpuinfo".into()),
            path_origin: PathOrigin::Syscall,
            path_truncated: false,
            path_prefix: None,
            flags: 0,
            flags_text: "O_RDONLY".into(),
            result: 3,
            error: None,
            syscall: "openat".into(),
        }),
    }
}

const INFO: &str = r##"{"schema_version":1,"tool":"emuwatch","tool_version":"0.1.0",
    "kernel":{"release":"6.1","version":"#1","machine":"x86_64"},"hostname":"h",
    "started_at":"2026-11-20T10:00:00.000000000Z","target":{},"probes":[],"events":{},
    "events_total":0,"lost":{"total":0,"by_reason":{},"per_cpu":[],"undecodable":0},
    "complete":true,"ring_buffer_bytes":8388608}"##;

#[test]
fn every_capability_reads_as_a_finding() {
    let info: SessionInfo = serde_json::from_str(INFO).unwrap();
    let cats = Categories::builtin();
    for c in Capability::ALL {
        let body = sample(c);
        assert_eq!(body.capability(), Some(c), "{c}: sample's capability");
        let events = vec![Event {
            ts: info.started_at,
            body,
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 10123,
            comm: "app".into(),
            app: Some("app".into()),
            phase: Some(Phase::Closed),
        }];
        let s = summary::build(
            &summary::Context {
                dir: "d",
                info: &info,
                geo_enriched: false,
                geo_sources: Vec::new(),
                geo_attribution: String::new(),
                categories: &cats,
            },
            &events,
        );
        let app = &s.apps[0];
        let f = app
            .findings
            .iter()
            .find(|f| f.kind == c)
            .unwrap_or_else(|| panic!("{c}: no finding"));
        assert!(f.what.contains(&f.target), "{c}: {:?}", f.what);
        assert!(!f.detail.is_empty(), "{c}: no detail");
        let headline = app.headline();
        assert!(
            headline.starts_with("1 background-collection finding"),
            "{c}: {headline}"
        );
        assert!(
            !headline.ends_with(": "),
            "{c}: the headline says nothing: {headline}"
        );
        assert!(c.count_text(2).starts_with("2 "), "{c}");
    }
}

/// Program names of the eBPF object: function symbols in program sections (not `.text`, where
/// shared functions live).
fn object_programs() -> Vec<String> {
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
    let file = object::File::parse(crate::kernel::EBPF_OBJECT).expect("parse the eBPF object");
    let mut out = Vec::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || !sym.is_global() {
            continue;
        }
        let Some(idx) = sym.section_index() else {
            continue;
        };
        let section = file.section_by_index(idx).unwrap();
        if section.name().unwrap_or("") == ".text" {
            continue;
        }
        out.push(sym.name().unwrap().to_string());
    }
    out
}

#[test]
fn every_program_of_the_ebpf_object_has_one_probe_table_row() {
    let programs = object_programs();
    assert!(programs.len() >= 10, "programs found: {programs:?}");
    let mut rows: BTreeMap<&str, usize> = BTreeMap::new();
    for p in PROBES {
        *rows.entry(p.program).or_default() += 1;
    }
    for p in &programs {
        assert_eq!(
            rows.get(p.as_str()).copied().unwrap_or(0),
            1,
            "program {p} of the eBPF object: rows in PROBES"
        );
    }
    for p in PROBES {
        assert!(
            programs.iter().any(|x| x == p.program),
            "PROBES row {} has no program in the eBPF object",
            p.program
        );
    }
}

#[test]
fn every_kernel_loss_slot_has_one_reason() {
    use crate::capability::LossReason;
    let mut slots: Vec<u32> = LossReason::ALL.iter().map(|r| r.slot()).collect();
    slots.sort_unstable();
    let all: Vec<u32> = (0..monitor_common::loss::SLOTS).collect();
    assert_eq!(
        slots, all,
        "LossReason must name each kernel loss slot exactly once"
    );
}

#[test]
fn every_capability_has_its_own_timeline_mark() {
    let mut classes: Vec<&str> = crate::capability::SPECS
        .iter()
        .map(|s| s.mark_class)
        .collect();
    for s in &crate::capability::SPECS {
        assert!(
            s.mark_class.starts_with("k-"),
            "{}: {}",
            s.name,
            s.mark_class
        );
        assert!(
            s.mark_color.starts_with('#'),
            "{}: {}",
            s.name,
            s.mark_color
        );
    }
    classes.sort_unstable();
    classes.dedup();
    assert_eq!(
        classes.len(),
        crate::capability::SPECS.len(),
        "mark classes must differ"
    );
}

/// `Body::kind()` is the serde tag of the variant: checked on every event of the fixture
/// sessions (which hold every kind of event).
#[test]
fn body_kind_is_the_json_kind() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sessions");
    let mut kinds = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let path = dir.unwrap().path().join("events.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let ev: crate::event::Event = serde_json::from_str(line).unwrap();
            let json = serde_json::to_value(&ev).unwrap();
            assert_eq!(json["kind"], ev.body.kind(), "{line}");
            kinds.insert(ev.body.kind());
        }
    }
    assert!(
        kinds.len() >= 10,
        "fixture sessions hold too few kinds: {kinds:?}"
    );
}
