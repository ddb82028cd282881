//! Files emuwatch writes (as root) and the files it loads whole: written private (0600 files,
//! 0700 directories), never through a planted symlink, and read only from regular files of a
//! bounded size.
use std::{
    fs::{DirBuilder, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::Path,
};

use anyhow::{Context, Result, bail};

/// Rewrite an existing regular file in place (no new file, so it works on a full disk as far
/// as its blocks reach); a symlink is refused.
pub fn overwrite_in_place(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)?;
    f.set_len(data.len() as u64)?;
    f.sync_data()
}

/// Size limits of the files read whole.
pub const TEXT_LIMIT: u64 = 64 << 20; // scenario, categories, packages.list, session.json
pub const BASELINE_LIMIT: u64 = 256 << 20;
pub const DB_LIMIT: u64 = 2 << 30; // GeoIP databases (.mmdb, ASN .csv)
pub const EVENTS_LIMIT: u64 = 64 << 30; // events.jsonl

/// Create `dir` (and missing parents) with mode 0700.
pub fn create_dir_private(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create directory {}", dir.display()))
}

/// A new file, mode 0600; fails if anything (a symlink included) is already at `path`.
pub fn create_new_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Open for appending (created 0600); a symlink at `path` is refused (O_NOFOLLOW).
pub fn open_append_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Write `data` to `path` as a new 0600 file renamed into place: whatever was at `path` (a
/// symlink included) is replaced, never written through. A device or FIFO already at `path`
/// (`--out /dev/null`, `--out /dev/stdout` of a pipe) is written to, never replaced: renaming a
/// file over /dev/null as root would break every other program on the machine.
pub fn write_replace(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(md) = std::fs::symlink_metadata(path) {
        let t = md.file_type();
        if t.is_char_device() || t.is_block_device() || t.is_fifo() {
            let mut f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .with_context(|| format!("write {}", path.display()))?;
            return f
                .write_all(data)
                .with_context(|| format!("write {}", path.display()));
        }
        if t.is_dir() {
            bail!("write {}: it is a directory", path.display());
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".emuwatch-")
        .tempfile_in(dir)
        .with_context(|| format!("write {}", path.display()))?;
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_data())
        .with_context(|| format!("write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Open a file to be read as a stream: it must be a regular file of at most `limit` bytes (a
/// FIFO, a device or a directory is a one-line error, not a hang); reading it past `limit`
/// (it grew) is an error.
pub fn open_regular(path: &Path, limit: u64) -> Result<impl Read + Send + use<>> {
    let f = open_checked(path, limit)?;
    struct Limited(std::io::Take<File>, u64, u64, std::path::PathBuf);
    impl Read for Limited {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            if self.1 > self.2 {
                return Err(std::io::Error::other(format!(
                    "{}: grew beyond {} bytes while being read",
                    self.3.display(),
                    self.2
                )));
            }
            Ok(n)
        }
    }
    Ok(Limited(f.take(limit + 1), 0, limit, path.to_path_buf()))
}

fn open_checked(path: &Path, limit: u64) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        // A FIFO would block the open until a writer comes; non-blocking, it opens at once and
        // is refused below.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("read {}", path.display()))?;
    let md = f
        .metadata()
        .with_context(|| format!("read {}", path.display()))?;
    if !md.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    if md.len() > limit {
        bail!(
            "{}: too large ({} bytes; at most {} are read)",
            path.display(),
            md.len(),
            limit
        );
    }
    Ok(f)
}

/// Read a whole file that must be a regular file of at most `limit` bytes: a FIFO, a device
/// (/dev/zero) or a directory is a one-line error, not a hang or an exhausted memory.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = open_checked(path, limit)?;
    let md = f
        .metadata()
        .with_context(|| format!("read {}", path.display()))?;
    let mut buf = Vec::with_capacity(md.len() as usize);
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("read {}", path.display()))?;
    if buf.len() as u64 > limit {
        bail!(
            "{}: grew beyond {} bytes while being read",
            path.display(),
            limit
        );
    }
    Ok(buf)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({})", path.display(), e.utf8_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn outputs_are_private_and_never_follow_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let out = d.path().join("out");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_replace(&out, b"report").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "report");
        assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let log = d.path().join("log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        assert!(open_append_private(&log).is_err());
        assert!(create_new_private(&log).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

        // A device or FIFO is written to, never replaced (`--out /dev/null` as root must not
        // turn /dev/null into a regular file).
        write_replace(Path::new("/dev/null"), b"report").unwrap();
        let md = std::fs::symlink_metadata("/dev/null").unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &md.file_type()
        ));
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_replace(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe");
        let md = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&md.file_type()));
        assert!(write_replace(d.path(), b"x").is_err());

        let sub = d.path().join("a/b");
        create_dir_private(&sub).unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "/dev/zero: not a regular file");
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once (no writer ever comes).
        let e = read_regular(&fifo, 1 << 20).unwrap_err();
        assert!(e.to_string().ends_with("not a regular file"), "{e}");
        assert!(read_regular(d.path(), 1 << 20).is_err());
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        assert!(
            read_regular(&big, 99)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert_eq!(read_regular(&big, 100).unwrap().len(), 100);
    }
}
