//! File paths: making paths absolute, remembering which path each (process, fd) has, and
//! recognising camera and microphone device nodes.
use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

use super::live_proc::ProcSource;

/// Default device patterns (glob syntax; `*` matches within one path component).
pub const DEFAULT_CAMERA: &[&str] = &["/dev/video*", "/dev/media*", "/dev/v4l-subdev*"];
pub const DEFAULT_MICROPHONE: &[&str] = &["/dev/snd/pcm*c"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    Camera,
    Microphone,
}

#[derive(Debug, Clone)]
pub struct DevicePatterns {
    camera: Vec<glob::Pattern>,
    microphone: Vec<glob::Pattern>,
    /// Android processes that serve the camera over binder, matched in their argv[0].
    camera_services: Vec<String>,
    /// What every pattern starts with before its first wildcard (`/dev/` by default): a path
    /// without it matches none, and most opens are decided by this one comparison.
    literal_prefix: String,
}

/// The start of a glob before its first `*`, `?` or `[`.
fn literal_start(glob: &str) -> &str {
    &glob[..glob.find(['*', '?', '[']).unwrap_or(glob.len())]
}

/// Default camera service names (argv[0] substrings): the framework's camera service and the
/// camera HAL provider processes.
pub const DEFAULT_CAMERA_SERVICES: &[&str] = &["cameraserver", "android.hardware.camera.provider"];

impl DevicePatterns {
    /// `extra` entries look like `camera=/dev/foo*` or `microphone=/dev/bar*`.
    pub fn new(extra: &[String]) -> Result<DevicePatterns> {
        let compile = |s: &str| {
            if s.is_empty() {
                bail!("device pattern {s:?}: the glob is empty");
            }
            glob::Pattern::new(s).map_err(|e| anyhow::anyhow!("device pattern {s:?}: {e}"))
        };
        let mut d = DevicePatterns {
            camera: DEFAULT_CAMERA
                .iter()
                .map(|s| compile(s))
                .collect::<Result<_>>()?,
            microphone: DEFAULT_MICROPHONE
                .iter()
                .map(|s| compile(s))
                .collect::<Result<_>>()?,
            camera_services: DEFAULT_CAMERA_SERVICES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            literal_prefix: String::new(),
        };
        let mut globs: Vec<&str> = DEFAULT_CAMERA
            .iter()
            .chain(DEFAULT_MICROPHONE)
            .copied()
            .collect();
        for e in extra {
            match e.split_once('=') {
                Some(("camera", p)) => {
                    d.camera.push(compile(p)?);
                    globs.push(p);
                }
                Some(("microphone", p)) => {
                    d.microphone.push(compile(p)?);
                    globs.push(p);
                }
                Some(("camera-service", p)) if !p.is_empty() => {
                    d.camera_services.push(p.to_string())
                }
                _ => bail!(
                    "device pattern {e:?}: expected camera=GLOB, microphone=GLOB or camera-service=NAME"
                ),
            }
        }
        let mut prefix = literal_start(globs[0]);
        for g in &globs[1..] {
            let common = prefix
                .char_indices()
                .zip(literal_start(g).chars())
                .find(|((_, a), b)| a != b)
                .map_or(prefix.len().min(literal_start(g).len()), |((i, _), _)| i);
            prefix = &prefix[..common];
        }
        d.literal_prefix = prefix.to_string();
        Ok(d)
    }

    /// Is a process with this argv[0] a camera service?
    pub fn is_camera_service(&self, argv0: &str) -> bool {
        self.camera_services
            .iter()
            .any(|s| argv0.contains(s.as_str()))
    }

    pub fn classify(&self, path: &str) -> Option<DeviceClass> {
        if !path.starts_with(self.literal_prefix.as_str()) {
            return None;
        }
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        if self.camera.iter().any(|p| p.matches_with(path, opts)) {
            Some(DeviceClass::Camera)
        } else if self.microphone.iter().any(|p| p.matches_with(path, opts)) {
            Some(DeviceClass::Microphone)
        } else {
            None
        }
    }
}

/// Lexically normalise `path` (drop `.`, fold `..`), which must be absolute.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Is `path` absolute and already what `normalize` makes of it (no empty, `.` or `..`
/// component, no trailing `/`)?
pub fn is_normal_absolute(path: &str) -> bool {
    path == "/"
        || path.strip_prefix('/').is_some_and(|rest| {
            rest.as_bytes()
                .split(|&b| b == b'/')
                .all(|c| !matches!(c, b"" | b"." | b".."))
        })
}

/// (tgid, fd) -> path of files opened by targets while recording.
#[derive(Default)]
pub struct FdTable {
    /// Written at every open, read at every close (foldhash: see phase.rs).
    paths: foldhash::HashMap<(u32, i32), String>,
    /// Where fds and working directories not seen opened are looked up (/proc).
    pub proc: ProcSource,
}

impl FdTable {
    pub fn opened(&mut self, tgid: u32, fd: i32, path: String) {
        self.paths.insert((tgid, fd), path);
    }

    pub fn closed(&mut self, tgid: u32, fd: i32) -> Option<String> {
        self.paths.remove(&(tgid, fd))
    }

    /// Path of an fd: what the open said, else what /proc says now.
    pub fn path_of(&self, tgid: u32, fd: i32) -> Option<String> {
        self.paths
            .get(&(tgid, fd))
            .cloned()
            .or_else(|| self.proc.fd_path(tgid, fd))
    }

    pub fn forget_process(&mut self, tgid: u32) {
        self.paths.retain(|(t, _), _| *t != tgid);
    }

    /// Absolute form of a path a process passed to open: relative paths are joined to the
    /// directory fd (`dfd`) or, for AT_FDCWD, the process's current directory.
    pub fn absolute(&self, tgid: u32, dfd: i32, path: &str, cwd: Option<&str>) -> Option<String> {
        if path.starts_with('/') {
            return Some(normalize(Path::new(path)).to_string_lossy().into_owned());
        }
        let base = if dfd == monitor_common::file::AT_FDCWD {
            cwd.map(str::to_string).or_else(|| self.proc.cwd(tgid))?
        } else {
            self.path_of(tgid, dfd)?
        };
        Some(
            normalize(&Path::new(&base).join(path))
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// `O_*` flag names for open(2) flags (x86_64/generic values).
pub fn open_flags_text(flags: u32) -> String {
    let mut parts = vec![match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    }];
    const NAMES: &[(u32, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o40000, "O_DIRECT"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "O_TMPFILE"),
    ];
    for (bit, name) in NAMES {
        if flags & bit != 0 && !(*name == "O_DIRECTORY" && flags & 0o20000000 != 0) {
            parts.push(name);
        }
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_absolute_paths_are_the_ones_normalize_leaves_alone() {
        for p in [
            "/",
            "/a",
            "/a/b.txt",
            "//a",
            "/a//b",
            "/a/",
            "/./a",
            "/a/.",
            "/a/..",
            "/../a",
            "a",
            "",
            ".",
            "/a/.b",
            "/a/..b",
            "/a/b..",
            "/.hidden/x",
            "/a/ /b",
        ] {
            let same = normalize(Path::new(p)).to_string_lossy() == p;
            assert_eq!(is_normal_absolute(p), same, "{p:?}");
        }
    }

    #[test]
    fn normalizes_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn classifies_devices() {
        let d = DevicePatterns::new(&["camera=/dev/emucam*".into()]).unwrap();
        assert_eq!(d.classify("/dev/video0"), Some(DeviceClass::Camera));
        assert_eq!(d.classify("/dev/v4l-subdev3"), Some(DeviceClass::Camera));
        assert_eq!(d.classify("/dev/emucam1"), Some(DeviceClass::Camera));
        assert_eq!(
            d.classify("/dev/snd/pcmC0D0c"),
            Some(DeviceClass::Microphone)
        );
        assert_eq!(
            d.classify("/dev/snd/pcmC0D0p"),
            None,
            "playback is not capture"
        );
        assert_eq!(d.classify("/dev/videos/x"), None);
        assert_eq!(d.classify("/data/dev/video0"), None);
        // Patterns outside /dev, or starting with a wildcard, still match (the literal prefix
        // every pattern shares shrinks to fit them).
        let d = DevicePatterns::new(&["camera=/sys/cam*".into(), "microphone=/dev/mic?".into()])
            .unwrap();
        assert_eq!(d.literal_prefix, "/");
        assert_eq!(d.classify("/sys/cam0"), Some(DeviceClass::Camera));
        assert_eq!(d.classify("/dev/mic1"), Some(DeviceClass::Microphone));
        assert_eq!(d.classify("/dev/video0"), Some(DeviceClass::Camera));
        let d = DevicePatterns::new(&["camera=*cam*".into()]).unwrap();
        assert_eq!(d.literal_prefix, "");
        assert_eq!(d.classify("/x/mycam"), None, "`*` does not match `/`");
        assert_eq!(d.classify("xcamy"), Some(DeviceClass::Camera));
        assert_eq!(
            DevicePatterns::new(&[]).unwrap().literal_prefix,
            "/dev/",
            "the defaults"
        );
        assert!(DevicePatterns::new(&["speaker=/dev/x".into()]).is_err());
        assert!(d.is_camera_service("/system/bin/cameraserver"));
        assert!(d.is_camera_service("/vendor/bin/hw/android.hardware.camera.provider@2.7-service"));
        assert!(!d.is_camera_service("/system/bin/audioserver"));
        let d = DevicePatterns::new(&["camera-service=vendor.camd".into()]).unwrap();
        assert!(d.is_camera_service("/vendor/bin/vendor.camd"));
    }

    #[test]
    fn flag_names() {
        assert_eq!(open_flags_text(0), "O_RDONLY");
        assert_eq!(
            open_flags_text(0o2000000 | 0o100 | 1),
            "O_WRONLY|O_CREAT|O_CLOEXEC"
        );
    }

    #[test]
    fn absolute_paths() {
        let mut t = FdTable::default();
        t.opened(1, 5, "/data/app".into());
        assert_eq!(
            t.absolute(1, 5, "x/../y.txt", None).as_deref(),
            Some("/data/app/y.txt")
        );
        assert_eq!(
            t.absolute(1, 5, "/etc//hosts", None).as_deref(),
            Some("/etc/hosts")
        );
        let at_cwd = monitor_common::file::AT_FDCWD;
        assert_eq!(
            t.absolute(1, at_cwd, "../b", Some("/x/y")).as_deref(),
            Some("/x/b")
        );
        // Unknown cwd: falls back to /proc (here: our own).
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            t.absolute(me, at_cwd, "a.txt", None),
            Some(cwd.join("a.txt").to_string_lossy().into_owned())
        );
    }
}
