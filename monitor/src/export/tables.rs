//! The exported tables' columns (docs/export.md): `events`, `findings` and `sessions`, each an
//! Arrow schema, and how a session's events, findings and session.json become their rows
//! (JSON objects decoded by the schema with `arrow-json`).
use std::sync::Arc;

use anyhow::{Result, bail};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value};

use crate::{
    analysis::summary::{AppReport, Finding},
    event::Event,
    session::{RunInfo, SessionInfo},
};

/// Version of the exported tables' columns. Adding a column keeps it; removing, renaming or
/// re-typing one bumps it (docs/export.md). Written into every file's key-value metadata
/// (`emuwatch.export_schema_version`) and the `sessions` table.
pub const EXPORT_SCHEMA_VERSION: u32 = 1;

/// The type of a column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ty {
    Str,
    Bool,
    U16,
    U32,
    U64,
    I32,
    F64,
    /// Nanoseconds, UTC.
    Ts,
    StrList,
    U32List,
    U64List,
    /// Text keys to counts.
    CountMap,
    /// Text keys to text values.
    StrMap,
    /// `dns` answers: list of struct `name`, `type`, `ttl`, `data`.
    Answers,
    /// A finding's destination: struct of the report's endpoint.
    Endpoint,
}

/// A column: name, type, and whether every row has a value.
pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

const fn col(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        required: false,
    }
}

const fn req(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        required: true,
    }
}

/// `events`: one row per event line, every field of every kind (docs/events.md) a column; a
/// field a kind does not have is null. Only `dns`'s text `result` is renamed (`dns_result`):
/// everywhere else `result` is the syscall's number.
pub const EVENT_COLUMNS: &[Col] = &[
    req("session_id", Ty::Str),
    req("ts", Ty::Ts),
    req("kind", Ty::Str),
    req("app", Ty::Str),
    req("phase", Ty::Str),
    req("pid", Ty::U32),
    req("tid", Ty::U32),
    req("ppid", Ty::U32),
    req("uid", Ty::U32),
    req("comm", Ty::Str),
    // process
    col("op", Ty::Str),
    col("child_pid", Ty::U32),
    col("filename", Ty::Str),
    col("exit_code", Ty::I32),
    col("signal", Ty::I32),
    col("cwd", Ty::Str),
    col("name", Ty::Str),
    col("process_name", Ty::Str),
    col("syscall", Ty::Str),
    col("became_target", Ty::Bool),
    // results, shared by most kinds
    col("result", Ty::I32),
    col("error", Ty::Str),
    // connect, tls, http
    col("family", Ty::Str),
    col("proto", Ty::Str),
    col("daddr", Ty::Str),
    col("dport", Ty::U16),
    col("scope", Ty::Str),
    col("country", Ty::Str),
    col("asn", Ty::U32),
    col("as_org", Ty::Str),
    col("conn_id", Ty::U64),
    col("host", Ty::Str),
    col("host_source", Ty::Str),
    // dns
    col("dir", Ty::Str),
    col("via", Ty::Str),
    col("qtype", Ty::Str),
    col("dns_result", Ty::Str),
    col("answers", Ty::Answers),
    col("resolver", Ty::Str),
    col("resolver_port", Ty::U16),
    col("complete", Ty::Bool),
    // tls
    col("sni", Ty::Str),
    col("sni_status", Ty::Str),
    col("alpn", Ty::StrList),
    col("versions", Ty::StrList),
    // http
    col("method", Ty::Str),
    col("path", Ty::Str),
    col("path_truncated", Ty::Bool),
    // file_open, file_read
    col("path_origin", Ty::Str),
    col("path_prefix", Ty::Str),
    col("flags", Ty::U32),
    col("flags_text", Ty::Str),
    col("fd", Ty::I32),
    col("bytes", Ty::U64),
    col("reads", Ty::U64),
    col("flushed_at", Ty::Str),
    // camera, microphone, Android services, binder_call
    col("interface", Ty::Str),
    col("code", Ty::U32),
    col("service", Ty::Str),
    col("one_way", Ty::Bool),
    col("handle", Ty::U32),
    col("callee_pid", Ty::U32),
    col("callee", Ty::Str),
    col("data_size", Ty::U64),
    col("token_layout", Ty::Str),
    col("capability", Ty::Str),
    col("lookup", Ty::Str),
    col("lookup_handle", Ty::U32),
    col("authority", Ty::Str),
    // app_state
    col("oom_score_adj", Ty::I32),
    col("band", Ty::Str),
    col("source", Ty::Str),
    col("written_by", Ty::Str),
    col("writer_pid", Ty::U32),
    col("writer_comm", Ty::Str),
    // lost
    col("count", Ty::U64),
    col("reason", Ty::Str),
    col("per_cpu", Ty::U64List),
    // phase
    col("to", Ty::Str),
    col("from", Ty::Str),
    col("detail", Ty::Str),
    col("how", Ty::Str),
    // marker
    col("label", Ty::Str),
];

/// `findings`: the report's findings (summary.json `apps[].findings[]`), one row each.
pub const FINDING_COLUMNS: &[Col] = &[
    req("session_id", Ty::Str),
    req("app", Ty::Str),
    req("phase", Ty::Str),
    req("kind", Ty::Str),
    req("what", Ty::Str),
    req("detail", Ty::Str),
    req("target", Ty::Str),
    req("count", Ty::U64),
    req("first", Ty::Ts),
    req("last", Ty::Ts),
    req("first_s", Ty::F64),
    req("last_s", Ty::F64),
    col("by_phase", Ty::CountMap),
    col("pids", Ty::U32List),
    col("comms", Ty::StrList),
    col("after_left_foreground_s", Ty::F64),
    col("after_closed_s", Ty::F64),
    col("results", Ty::CountMap),
    col("destination", Ty::Endpoint),
    col("category", Ty::Str),
    col("bytes", Ty::U64),
    col("ops", Ty::StrList),
];

/// `sessions`: one row per session (session.json, and run.json's scenario).
pub const SESSION_COLUMNS: &[Col] = &[
    req("session_id", Ty::Str),
    req("export_schema_version", Ty::U32),
    req("event_schema_version", Ty::U32),
    req("dir_name", Ty::Str),
    col("scenario", Ty::Str),
    col("run_exit_code", Ty::U32),
    col("labels", Ty::StrMap),
    req("tool_version", Ty::Str),
    req("hostname", Ty::Str),
    req("kernel_release", Ty::Str),
    req("machine", Ty::Str),
    req("started_at", Ty::Ts),
    col("ended_at", Ty::Ts),
    col("duration_s", Ty::F64),
    col("stop_reason", Ty::Str),
    col("target", Ty::Str),
    col("android_api", Ty::U32),
    col("android_api_source", Ty::Str),
    col("syscall_probes", Ty::Str),
    req("events_total", Ty::U64),
    col("events", Ty::CountMap),
    req("lost_total", Ty::U64),
    req("complete", Ty::Bool),
    req("apps", Ty::StrList),
];

fn map_of(value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

pub fn data_type(ty: Ty) -> DataType {
    match ty {
        Ty::Str => DataType::Utf8,
        Ty::Bool => DataType::Boolean,
        Ty::U16 => DataType::UInt16,
        Ty::U32 => DataType::UInt32,
        Ty::U64 => DataType::UInt64,
        Ty::I32 => DataType::Int32,
        Ty::F64 => DataType::Float64,
        Ty::Ts => DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
        Ty::StrList => list_of(DataType::Utf8),
        Ty::U32List => list_of(DataType::UInt32),
        Ty::U64List => list_of(DataType::UInt64),
        Ty::CountMap => map_of(DataType::UInt64),
        Ty::StrMap => map_of(DataType::Utf8),
        Ty::Answers => list_of(DataType::Struct(Fields::from(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("type", DataType::Utf8, true),
            Field::new("ttl", DataType::UInt32, true),
            Field::new("data", DataType::Utf8, true),
        ]))),
        Ty::Endpoint => DataType::Struct(Fields::from(vec![
            Field::new("host", DataType::Utf8, true),
            Field::new("host_source", DataType::Utf8, true),
            Field::new("address", DataType::Utf8, true),
            Field::new("port", DataType::UInt16, true),
            Field::new("proto", DataType::Utf8, true),
            Field::new("scope", DataType::Utf8, true),
            Field::new("country", DataType::Utf8, true),
            Field::new("asn", DataType::UInt32, true),
            Field::new("as_org", DataType::Utf8, true),
        ])),
    }
}

pub fn schema(cols: &[Col]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|c| Field::new(c.name, data_type(c.ty), !c.required))
            .collect::<Vec<_>>(),
    ))
}

/// The `events` row of one event: its JSON fields, `app` as the report attributes it,
/// `phase` as the report counts it (recorded, or `foreground`), and the session id. A field
/// with no column is an error (a schema change the export has not caught up with).
pub fn event_row(session_id: &str, ev: &Event, app: &str) -> Result<Value> {
    let Value::Object(mut m) = serde_json::to_value(ev)? else {
        bail!("an event is not a JSON object");
    };
    if ev.body.kind() == "dns"
        && let Some(r) = m.remove("result")
    {
        m.insert("dns_result".into(), r);
    }
    m.insert("session_id".into(), session_id.into());
    m.insert("app".into(), app.into());
    m.insert(
        "phase".into(),
        crate::analysis::history::phase_of(ev).as_str().into(),
    );
    if let Some(k) = m
        .keys()
        .find(|k| !EVENT_COLUMNS.iter().any(|c| c.name == *k))
    {
        bail!(
            "event field {k:?} (kind {}) has no column in the export schema (version {EXPORT_SCHEMA_VERSION})",
            ev.body.kind()
        );
    }
    Ok(Value::Object(m))
}

/// The `findings` rows of one app.
pub fn finding_rows(session_id: &str, app: &AppReport) -> Result<Vec<Value>> {
    app.findings
        .iter()
        .map(|f: &Finding| {
            let Value::Object(mut m) = serde_json::to_value(f)? else {
                bail!("a finding is not a JSON object");
            };
            m.insert("session_id".into(), session_id.into());
            m.insert("app".into(), app.app.clone().into());
            m.retain(|k, _| FINDING_COLUMNS.iter().any(|c| c.name == k));
            Ok(Value::Object(m))
        })
        .collect()
}

/// The `sessions` row of a session.
pub fn session_row(
    session_id: &str,
    dir_name: &str,
    info: &SessionInfo,
    run: Option<&RunInfo>,
    apps: &[String],
) -> Result<Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("session_id", session_id.into());
    put("export_schema_version", EXPORT_SCHEMA_VERSION.into());
    put("event_schema_version", info.schema_version.into());
    put("dir_name", dir_name.into());
    if let Some(r) = run {
        put("scenario", r.scenario.clone().into());
        put("run_exit_code", r.exit_code.into());
    }
    put("labels", serde_json::to_value(&info.labels)?);
    put("tool_version", info.tool_version.clone().into());
    put("hostname", info.hostname.clone().into());
    put("kernel_release", info.kernel.release.clone().into());
    put("machine", info.kernel.machine.clone().into());
    let ts = |t: &chrono::DateTime<chrono::Utc>| {
        Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    };
    put("started_at", ts(&info.started_at));
    if let Some(e) = &info.ended_at {
        put("ended_at", ts(e));
        let d = (*e - info.started_at).num_nanoseconds().unwrap_or(0) as f64 / 1e9;
        put("duration_s", d.into());
    }
    if let Some(r) = info.stop_reason {
        put("stop_reason", serde_json::to_value(r)?);
    }
    put("target", serde_json::to_string(&info.target)?.into());
    if let Some(a) = &info.android_api {
        let v = serde_json::to_value(a)?;
        put("android_api", v["level"].clone());
        put("android_api_source", v["source"].clone());
    }
    if let Some(p) = &info.probe_plan {
        let v = serde_json::to_value(p)?;
        put("syscall_probes", v["syscall_probes"].clone());
    }
    put("events_total", info.events_total.into());
    put("events", serde_json::to_value(&info.events)?);
    put("lost_total", info.lost.total.into());
    put("complete", info.complete.into());
    put("apps", serde_json::to_value(apps)?);
    Ok(Value::Object(m))
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
