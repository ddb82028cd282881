//! Every event field is a column, every column is documented.
use super::*;
use crate::event::*;

/// One event of every kind with every field set: struct literals, so a field added to the
/// schema does not compile here until it is added (and then must have a column).
fn every_kind() -> Vec<Event> {
    let s = || Some("x".to_string());
    let device = Device {
        op: DeviceOp::ALL[0],
        path: s(),
        result: -13,
        error: s(),
        interface: s(),
        method: s(),
        code: Some(3),
        service: s(),
    };
    let ip: std::net::IpAddr = "10.0.2.3".parse().unwrap();
    let mut bodies = vec![
        Body::Process(Process {
            op: ProcOp::Exec,
            child_pid: Some(2),
            filename: s(),
            exit_code: Some(1),
            signal: Some(9),
            cwd: s(),
            result: Some(-2),
            name: s(),
            process_name: s(),
            syscall: s(),
            became_target: Some(true),
        }),
        Body::Connect(Connect {
            family: AddrFamily::ALL[0],
            proto: Proto::ALL[0],
            daddr: ip,
            dport: 443,
            result: -111,
            error: s(),
            scope: Some(Scope::ALL[0]),
            country: s(),
            asn: Some(1),
            as_org: s(),
            conn_id: Some(1),
            host: s(),
            host_source: Some(HostSource::ALL[0]),
        }),
        Body::FileOpen(FileOpen {
            path: s(),
            path_origin: PathOrigin::ALL[0],
            path_truncated: true,
            path_prefix: s(),
            flags: 0,
            flags_text: "O_RDONLY".into(),
            result: 3,
            error: s(),
            syscall: "openat".into(),
        }),
        Body::FileRead(FileRead {
            path: s(),
            fd: 3,
            bytes: 10,
            reads: 2,
            flushed_at: FlushedAt::ALL[0],
        }),
        Body::Dns(Dns {
            dir: DnsDir::ALL[0],
            via: DnsVia::ALL[0],
            name: s(),
            qtype: s(),
            result: Some("noerror".into()),
            answers: vec![DnsAnswer {
                name: "x".into(),
                rtype: "A".into(),
                ttl: 60,
                data: s(),
            }],
            resolver: Some(ip),
            resolver_port: Some(53),
            proto: Proto::ALL[0],
            conn_id: Some(2),
            complete: true,
        }),
        Body::Tls(Tls {
            conn_id: Some(1),
            daddr: ip,
            dport: 443,
            sni: s(),
            sni_status: SniStatus::ALL[0],
            alpn: vec!["h2".into()],
            versions: vec!["TLS1.3".into()],
            complete: true,
        }),
        Body::Http(Http {
            conn_id: Some(1),
            daddr: ip,
            dport: 80,
            method: "GET".into(),
            host: s(),
            path: "/".into(),
            path_truncated: false,
        }),
        Body::BinderCall(BinderCall {
            interface: s(),
            method: s(),
            code: 1,
            one_way: false,
            handle: 0,
            service: s(),
            callee_pid: Some(5),
            callee: s(),
            data_size: 64,
            token_layout: Some(TokenLayout::ALL[0]),
            capability: Some(Capability::Clipboard),
            lookup: s(),
            lookup_handle: Some(4),
            authority: s(),
            result: 0,
            error: s(),
        }),
        Body::AppState(AppState {
            oom_score_adj: 900,
            band: "cached".into(),
            source: StateSource::ALL[0],
            written_by: Some(Writer::ALL[0]),
            writer_pid: Some(1),
            writer_comm: s(),
        }),
        Body::Lost(Lost {
            count: 1,
            reason: LossReason::ALL[0],
            per_cpu: vec![1, 0],
        }),
        Body::Phase(PhaseChange {
            to: Phase::Closed,
            from: Some(Phase::Background),
            reason: PhaseReason::ALL[0],
            detail: s(),
            how: Some(ExitHow::ALL[0]),
            signal: Some(9),
            exit_code: Some(0),
        }),
        Body::Marker(Marker { label: "x".into() }),
    ];
    for c in [
        Capability::Camera,
        Capability::Microphone,
        Capability::Location,
        Capability::DeviceIdentifier,
        Capability::Clipboard,
        Capability::Contacts,
        Capability::InstalledApps,
        Capability::Wifi,
        Capability::Accounts,
    ] {
        bodies.push(Body::of_device(c, device.clone()).unwrap());
    }
    bodies
        .into_iter()
        .map(|body| Event {
            ts: chrono::DateTime::parse_from_rfc3339("2026-11-27T00:00:00.123456789Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            body,
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 10123,
            comm: "x".into(),
            app: s(),
            phase: Some(Phase::Background),
        })
        .collect()
}

/// The kinds of docs/events.md (its `### ` headings).
fn documented_kinds() -> BTreeSet<String> {
    let doc = include_str!("../../../docs/events.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("### "))
        .flat_map(|l| l.split(", "))
        .map(|k| k.trim_matches('`').to_string())
        .collect()
}

use std::collections::BTreeSet;

/// Every field of every event kind is a column of `events` (reusing docs/events.md's
/// kinds: a kind documented there and missing here fails), and becomes a row that decodes
/// into the table with every value kept.
#[test]
fn every_event_field_is_a_column() {
    let events = every_kind();
    let kinds: BTreeSet<String> = events.iter().map(|e| e.body.kind().to_string()).collect();
    assert_eq!(kinds, documented_kinds(), "a kind has no sample here");
    let schema = schema(EVENT_COLUMNS);
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .unwrap();
    let mut rows = Vec::new();
    for ev in &events {
        let row = event_row("s", ev, "app").unwrap();
        let json = serde_json::to_value(ev).unwrap();
        for k in json.as_object().unwrap().keys() {
            let col = if ev.body.kind() == "dns" && k == "result" {
                "dns_result"
            } else {
                k
            };
            assert!(
                EVENT_COLUMNS.iter().any(|c| c.name == col),
                "{}: field {k} has no column",
                ev.body.kind()
            );
        }
        rows.push(row);
    }
    decoder.serialize(&rows).unwrap();
    let batch = decoder.flush().unwrap().unwrap();
    assert_eq!(batch.num_rows(), events.len());
    // Every column but those no kind fills is non-null somewhere.
    for (i, c) in EVENT_COLUMNS.iter().enumerate() {
        assert!(
            batch.column(i).null_count() < batch.num_rows(),
            "column {} is never filled",
            c.name
        );
    }
}

/// docs/export.md documents every column of every table, with its type.
#[test]
fn every_column_is_documented() {
    let doc = include_str!("../../../docs/export.md");
    let mut missing = Vec::new();
    for (table, cols) in [
        ("events", EVENT_COLUMNS),
        ("findings", FINDING_COLUMNS),
        ("sessions", SESSION_COLUMNS),
    ] {
        let section = doc
            .split(&format!("### `{table}`"))
            .nth(1)
            .unwrap_or_else(|| panic!("docs/export.md has no ### `{table}` section"));
        let section = section.split("\n### ").next().unwrap();
        for c in cols {
            if !section.contains(&format!("| `{}` |", c.name)) {
                missing.push(format!("{table}.{}", c.name));
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/export.md: {missing:?}");
    assert!(
        doc.contains(&format!("export schema version {EXPORT_SCHEMA_VERSION}")),
        "docs/export.md names the export schema version"
    );
}
