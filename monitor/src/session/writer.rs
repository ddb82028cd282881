//! Writing a session: events.jsonl line by line, session.json rewritten at start, attach and
//! end.
use super::*;

pub struct SessionWriter {
    dir: PathBuf,
    events: BufWriter<File>,
    /// The line being written, reused for every event.
    line: Vec<u8>,
    pub info: SessionInfo,
}

impl SessionWriter {
    pub fn create(dir: &Path, info: SessionInfo) -> Result<SessionWriter> {
        crate::safefs::create_dir_private(dir)
            .with_context(|| format!("create session directory {}", dir.display()))?;
        let path = dir.join("events.jsonl");
        let f = crate::safefs::create_new_private(&path).with_context(|| {
            format!(
                "create {} (is this directory already a session?)",
                path.display()
            )
        })?;
        let w = SessionWriter {
            dir: dir.to_path_buf(),
            // Lines are handed to the kernel in batches of up to 1 MiB (and at every flush).
            events: BufWriter::with_capacity(1 << 20, f),
            line: Vec::with_capacity(4096),
            info,
        };
        w.write_info()?;
        Ok(w)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of events.jsonl on disk (after a flush).
    pub fn events_len(&self) -> u64 {
        self.events.get_ref().metadata().map_or(0, |m| m.len())
    }

    /// Append one event line, escaped as serde_json escapes it (`line.rs`), so hostile names
    /// cannot break the line structure. No allocation once the line buffer has grown.
    pub fn write(&mut self, ev: &Event) -> Result<()> {
        self.line.clear();
        super::line::write_line(&mut self.line, ev)?;
        self.events.write_all(&self.line)?;
        // Counted without allocating a key for every event.
        let kind = ev.body.kind();
        match self.info.events.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.info.events.insert(kind.to_string(), 1);
            }
        }
        self.info.events_total += 1;
        Ok(())
    }

    /// Push buffered lines to the file (called after every ring-buffer drain), so a crash
    /// loses at most a partial last line.
    pub fn flush(&mut self) -> Result<()> {
        self.events.flush().context("write events.jsonl")
    }

    /// (Re)write session.json atomically.
    pub fn write_info(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(&self.info)?;
        let path = self.dir.join("session.json");
        match crate::safefs::write_replace(&path, &data) {
            Ok(()) => Ok(()),
            // A full disk has no room for a new file; the old one's blocks can take the final
            // state (`stop_reason: error`) in place.
            Err(e) => crate::safefs::overwrite_in_place(&path, &data).map_err(|_| e),
        }
    }

    pub fn finish(mut self) -> Result<SessionInfo> {
        self.flush()?;
        self.events.get_ref().sync_all().ok();
        self.write_info()?;
        Ok(self.info)
    }
}
