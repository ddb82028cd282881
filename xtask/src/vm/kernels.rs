//! Debian kernels by package name. apt resolves the suite's `linux-image-<arch>` metapackage to
//! the current ABI package and downloads it from the Debian archive this machine's apt sources
//! already use, with a private sources list and state (the system's apt is only read). The
//! package is unpacked once into `.tools/kernels/<name>/`: the bootable kernel, the few modules
//! the guest loads (decompressed, with their own `modules.dep`), and for a foreign architecture
//! that architecture's static busybox.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::{Arch, Kernel};
use crate::{describe, root, run};

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Modules the guest loads (with their parameters); modprobe brings their dependencies
/// (virtio, virtio_ring, virtio_pci_{modern,legacy}_dev, netfs, fscache, 9pnet).
pub const MODULES: &[(&str, &str)] = &[
    ("binder_linux", "devices=binder"),
    ("virtio_pci", ""),
    ("9pnet_virtio", ""),
    ("9p", ""),
];

/// What `prepare` leaves in the cache, recorded in `info.json` there.
#[derive(Serialize, Deserialize)]
pub struct Prepared {
    pub package: String,
    pub version: String,
    /// `uname -r` of the kernel.
    pub release: String,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Prepared {
    /// Uncompressed ELF `vmlinux` (x86, PVH direct boot) or the arm64 `Image`.
    pub fn image(&self) -> PathBuf {
        self.dir.join("kernel")
    }
    /// A root holding `lib/modules/<release>/` with what the guest loads.
    pub fn modules(&self) -> PathBuf {
        self.dir.join("modules")
    }
    /// The static busybox of a foreign architecture.
    pub fn busybox(&self) -> PathBuf {
        self.dir.join("busybox")
    }
}

fn cache_dir() -> PathBuf {
    root().join(".tools/kernels")
}

/// The kernel `k`, from the cache or fetched and unpacked now. `refresh` drops the cached copy
/// first (a newer ABI package may have replaced it in the archive).
pub fn prepare(k: &Kernel, refresh: bool) -> Result<Prepared> {
    let dir = cache_dir().join(k.name);
    if refresh && dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    if !dir.join("info.json").exists() {
        let t = Instant::now();
        // Built beside the cache and renamed into place: a half-done or concurrent fetch
        // (the tools directory may be shared by several checkouts) never looks ready.
        let tmp = cache_dir().join(format!(".{}.tmp-{}", k.name, std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let r = fetch(k, &tmp);
        let _ = fs::remove_dir_all(tmp.join("apt"));
        let _ = fs::remove_dir_all(tmp.join("unpack"));
        if let Err(e) = r {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e.context(format!("prepare kernel {}", k.name)));
        }
        if fs::rename(&tmp, &dir).is_err() {
            // Another run finished first: keep its copy.
            let _ = fs::remove_dir_all(&tmp);
        }
        eprintln!(
            "xtask: kernel {} downloaded and unpacked in {:.1}s",
            k.name,
            t.elapsed().as_secs_f64()
        );
    }
    let info = dir.join("info.json");
    let mut p: Prepared = serde_json::from_slice(
        &fs::read(&info).with_context(|| format!("read {}", info.display()))?,
    )
    .with_context(|| format!("parse {}", info.display()))?;
    p.dir = dir;
    Ok(p)
}

/// apt with private sources, lists, cache and status: reads the system's apt configuration
/// (proxies etc.), never writes it.
struct Apt {
    dir: PathBuf,
    arch: &'static str,
}

impl Apt {
    fn new(dir: PathBuf, k: &Kernel) -> Result<Apt> {
        ensure!(
            Path::new(KEYRING).exists(),
            "{KEYRING} is missing: install debian-archive-keyring"
        );
        let (main, security) = archive_uris()?;
        let arch = k.arch.debian();
        let mut list = String::new();
        for (uri, suite) in std::iter::once((main, k.suite.to_string()))
            .chain(security.map(|s| (s, format!("{}-security", k.suite))))
        {
            list.push_str(&format!(
                "deb [arch={arch} signed-by={KEYRING} target-=DEP-11] {uri} {suite} main\n"
            ));
        }
        for d in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(d))?;
        }
        fs::write(dir.join("sources.list"), list)?;
        fs::write(dir.join("status"), "")?;
        Ok(Apt { dir, arch })
    }

    fn cmd(&self, program: &str) -> Command {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut c = Command::new(program);
        for (key, value) in [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", "/dev/null".into()),
            ("Dir::Etc::Preferences", "/dev/null".into()),
            ("Dir::Etc::PreferencesParts", "/dev/null".into()),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::Cache", d("cache")),
            ("APT::Architecture", self.arch.into()),
            ("APT::Architectures", self.arch.into()),
            // Downloads land in our directory, which apt's sandbox user cannot write.
            ("APT::Sandbox::User", "root".into()),
        ] {
            c.arg("-o").arg(format!("{key}={value}"));
        }
        c.arg("-q");
        c
    }

    /// The package a metapackage currently depends on (the ABI-named kernel package).
    fn resolve(&self, meta: &str) -> Result<String> {
        let out = output(self.cmd("apt-cache").args(["depends", meta]))?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .map(str::to_string)
            .with_context(|| format!("{meta} depends on no package:\n{out}"))
    }

    /// Download `pkg` into `dest` and return the `.deb`.
    fn download(&self, pkg: &str, dest: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dest)?;
        run(self
            .cmd("apt-get")
            .args(["download", pkg])
            .current_dir(dest))?;
        fs::read_dir(dest)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.extension().is_some_and(|e| e == "deb")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_")))
            })
            .with_context(|| format!("apt-get download {pkg} left no .deb"))
    }
}

/// The Debian archive and security archive this machine's apt sources use.
fn archive_uris() -> Result<(String, Option<String>)> {
    let out = output(Command::new("apt-get").args([
        "indextargets",
        "--format",
        "$(LABEL)\t$(REPO_URI)",
    ]))?;
    let uri = |label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label)?.strip_prefix('\t'))
            .map(str::to_string)
    };
    let main = uri("Debian").context(
        "this machine's apt sources have no Debian archive (Label: Debian) to fetch kernels from",
    )?;
    Ok((main, uri("Debian-Security")))
}

fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    ensure!(
        o.status.success(),
        "{} failed ({})",
        describe(cmd),
        o.status
    );
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn fetch(k: &Kernel, dir: &Path) -> Result<()> {
    let apt = Apt::new(dir.join("apt"), k)?;
    run(apt.cmd("apt-get").arg("update"))?;
    let meta = format!("linux-image-{}", k.arch.debian());
    let package = apt.resolve(&meta)?;
    eprintln!("xtask: {} {meta} -> {package}", k.suite);
    let deb = apt.download(&package, &dir.join("apt/debs"))?;
    let version = output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))?
        .trim()
        .to_string();
    let unpack = dir.join("unpack");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpack))?;

    let release = fs::read_dir(unpack.join("boot"))?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("vmlinuz-").map(str::to_string)
        })
        .with_context(|| format!("{package} has no /boot/vmlinuz-*"))?;
    let vmlinuz = unpack.join(format!("boot/vmlinuz-{release}"));
    match k.arch {
        Arch::Amd64 => vmlinux_from_bzimage(&vmlinuz, &dir.join("kernel"))?,
        Arch::Arm64 => arm64_image(&vmlinuz, &dir.join("kernel"))?,
    }
    stage_modules(&unpack, &release, &dir.join("modules"))?;
    if k.arch != Arch::host() {
        // The guest's userland: that architecture's busybox, unpacked from Debian's package.
        let deb = apt.download("busybox-static", &dir.join("apt/debs"))?;
        let bb = dir.join("apt/busybox");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&bb))?;
        let src = ["bin/busybox", "usr/bin/busybox"]
            .iter()
            .map(|p| bb.join(p))
            .find(|p| p.exists())
            .context("busybox-static has no bin/busybox")?;
        fs::copy(&src, dir.join("busybox"))?;
    }
    let info = Prepared {
        package,
        version,
        release,
        dir: dir.to_path_buf(),
    };
    fs::write(dir.join("info.json"), serde_json::to_vec_pretty(&info)?)?;
    Ok(())
}

/// The uncompressed `vmlinux` inside an x86 bzImage, for PVH direct boot (no decompressor run
/// under TCG: seconds saved per boot). The compressed payload's place comes from the boot
/// protocol header (`setup_sects`, `payload_offset`, `payload_length`); its first bytes say
/// which compressor made it (xz on 5.10/6.1, zstd on 6.12); its last 4 are the size.
fn vmlinux_from_bzimage(bzimage: &Path, out: &Path) -> Result<()> {
    let img = fs::read(bzimage).with_context(|| format!("read {}", bzimage.display()))?;
    let u32_at = |o: usize| {
        img.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    ensure!(
        img.get(0x202..0x206) == Some(b"HdrS"),
        "{} is not a bzImage",
        bzimage.display()
    );
    let setup_sects = match img[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248).context("short header")? as usize;
    let len = u32_at(0x24c).context("short header")? as usize;
    let payload = img
        .get(start..start + len)
        .context("bzImage payload lies outside the file")?;
    let (data, size) = payload.split_at(len - 4);
    let size = u32::from_le_bytes(size.try_into().unwrap()) as u64;
    let tool = if data.starts_with(b"\xfd7zXZ\x00") {
        "xz"
    } else if data.starts_with(b"\x28\xb5\x2f\xfd") {
        "zstd"
    } else {
        bail!(
            "{}: payload is neither xz nor zstd (starts {:02x?})",
            bzimage.display(),
            &data[..data.len().min(6)]
        );
    };
    let src = out.with_extension(tool);
    fs::write(&src, data)?;
    let r = decompress(tool, &src, out);
    let _ = fs::remove_file(&src);
    r?;
    let got = fs::metadata(out)?.len();
    ensure!(
        got == size && fs::read(out)?.starts_with(b"\x7fELF"),
        "{}: unpacked vmlinux is {got} bytes, header says {size}, or not ELF",
        bzimage.display()
    );
    Ok(())
}

/// arm64 `vmlinuz`: a plain `Image` or a gzip'd one (Debian's trixie ships it plain).
fn arm64_image(vmlinuz: &Path, out: &Path) -> Result<()> {
    let img = fs::read(vmlinuz).with_context(|| format!("read {}", vmlinuz.display()))?;
    if img.starts_with(b"\x1f\x8b") {
        decompress("gzip", vmlinuz, out)?;
    } else if img.get(4..8) == Some(b"zimg") {
        bail!(
            "{} is an EFI zboot image: not supported yet",
            vmlinuz.display()
        );
    } else {
        fs::copy(vmlinuz, out)?;
    }
    let head = fs::read(out)?;
    ensure!(
        head.get(0x38..0x3c) == Some(b"ARMd"),
        "{}: no arm64 Image magic",
        vmlinuz.display()
    );
    Ok(())
}

/// `tool -dc src > out`.
fn decompress(tool: &str, src: &Path, out: &Path) -> Result<()> {
    run(Command::new(tool)
        .arg("-dc")
        .arg(src)
        .stdout(fs::File::create(out)?))
}

/// Copies of the modules the guest loads and their dependencies, decompressed (busybox's
/// modprobe reads plain `.ko`), with `modules.dep` from `depmod -b`, under
/// `dest/lib/modules/<release>/`, plus `vmbed-load`: the modules to load at boot, with their
/// parameters (those built into this kernel left out).
fn stage_modules(unpack: &Path, release: &str, dest: &Path) -> Result<()> {
    // 6.12 keeps modules under /usr/lib/modules; kmod looks in <base>/lib/modules.
    let from = unpack.join("lib/modules").join(release);
    if !from.exists() {
        let usr = unpack.join("usr/lib/modules");
        fs::create_dir_all(unpack.join("lib"))?;
        fs::rename(&usr, unpack.join("lib/modules"))
            .with_context(|| format!("no modules under {}", usr.display()))?;
    }
    run(Command::new("depmod").arg("-b").arg(unpack).arg(release))?;
    let to = dest.join("lib/modules").join(release);
    fs::create_dir_all(&to)?;
    let (mut load, mut order) = (String::new(), String::new());
    for (module, params) in MODULES {
        let deps = output(Command::new("modprobe").arg("-d").arg(unpack).args([
            "-S",
            release,
            "--show-depends",
            module,
        ]))?;
        let mut builtin = false;
        for line in deps.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("builtin"), _) => builtin = true,
                (Some("insmod"), Some(ko)) => {
                    let rel = Path::new(ko)
                        .strip_prefix(&from)
                        .with_context(|| format!("{ko} is not under {}", from.display()))?;
                    let tool = match rel.extension().and_then(|e| e.to_str()) {
                        Some("xz") => Some("xz"),
                        Some("zst") => Some("zstd"),
                        _ => None,
                    };
                    let plain = match tool {
                        Some(_) => to.join(rel).with_extension(""),
                        None => to.join(rel),
                    };
                    if plain.exists() {
                        continue;
                    }
                    order.push_str(&format!("{}\n", plain.strip_prefix(&to)?.display()));
                    fs::create_dir_all(plain.parent().unwrap())?;
                    match tool {
                        Some(tool) => decompress(tool, Path::new(ko), &plain)?,
                        None => drop(fs::copy(ko, &plain)?),
                    }
                }
                _ => bail!("unexpected modprobe output for {module}: {line}"),
            }
        }
        if !builtin {
            load.push_str(&format!("{module} {params}\n"));
        }
    }
    for f in ["modules.builtin", "modules.builtin.modinfo"] {
        let _ = fs::copy(from.join(f), to.join(f));
    }
    fs::write(to.join("modules.order"), order)?;
    run(Command::new("depmod").arg("-b").arg(dest).arg(release))?;
    fs::write(dest.join("lib/modules/vmbed-load"), load)?;
    Ok(())
}
