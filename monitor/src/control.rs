//! The control socket of a running recording (`SESSION/control.sock`): `emuwatch mark` and
//! scenario steps send one JSON line `{"label": .., "phase": .., "app": ..}` and get `ok` or
//! `error: ...` back. `{"stop": true}` (what `emuwatch run` sends when its steps are done) ends
//! the recording, after the marker if the request also has a label.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::{capture::Capture, event::Phase};

pub const SOCKET: &str = "control.sock";

#[derive(Debug, Serialize, Deserialize)]
pub struct MarkRequest {
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// End the recording.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
}

/// Serve one connection: read one request line, apply it, answer. True when the request asks
/// the recording to stop.
pub async fn serve(stream: tokio::net::UnixStream, capture: &mut Capture) -> bool {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = tokio::io::BufReader::new(rd);
    let read = tokio::time::timeout(Duration::from_secs(2), rd.read_line(&mut line)).await;
    let mut stop = false;
    let answer = match read {
        Ok(Ok(_)) => match serde_json::from_str::<MarkRequest>(line.trim()) {
            // A bare stop request adds no marker.
            Ok(req) if req.stop && req.label.is_empty() && req.phase.is_none() => {
                stop = true;
                "ok".to_string()
            }
            Ok(req) => match capture.marker(&req.label, req.phase, req.app.as_deref()) {
                Ok(()) => {
                    stop = req.stop;
                    "ok".to_string()
                }
                Err(e) => format!("error: {e:#}"),
            },
            Err(e) => format!("error: bad request: {e}"),
        },
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out waiting for the request".to_string(),
    };
    let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
    stop
}

/// The session to mark: `--session`, else $EMUWATCH_SESSION, else the newest recording under
/// ./sessions that has a control socket.
pub fn find_session(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit.or_else(|| std::env::var_os("EMUWATCH_SESSION").map(PathBuf::from)) {
        return Ok(p);
    }
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir("sessions")
        .context("no --session given and no ./sessions directory")?
        .flatten()
    {
        let sock = e.path().join(SOCKET);
        if let Ok(md) = std::fs::metadata(&sock) {
            let t = md.modified().unwrap_or(std::time::UNIX_EPOCH);
            if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                best = Some((t, e.path()));
            }
        }
    }
    best.map(|(_, p)| p)
        .context("no running recording found under ./sessions (give --session DIR)")
}

/// Send a marker to the recording in `session`.
pub fn mark(session: &Path, req: &MarkRequest) -> Result<()> {
    let sock = session.join(SOCKET);
    let mut s = UnixStream::connect(&sock).with_context(|| {
        format!(
            "connect to {} (is that session still recording?)",
            sock.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .context("read the recorder's answer")?;
    let answer = answer.trim();
    if answer != "ok" {
        bail!("the recorder refused the marker: {answer}");
    }
    Ok(())
}
