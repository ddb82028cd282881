//! The guest's whole userland: busybox, the kernel's modules, `/init`, and on x86 the host's
//! glibc libraries and the few host tools the capture tests call (bash, setpriv). Everything
//! else (the test binaries, emuwatch) is read from the repository, shared over 9p at the same
//! absolute path as on the host.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, ensure};

use super::{Arch, Kernel, kernels::Prepared};
use crate::{describe, run};

/// Host tools the capture tests run that busybox lacks or does differently: `setpriv
/// --reuid/--regid/--clear-groups` (busybox's has none of these), `bash -c 'exec -a …'`.
/// `curl`: the real TLS and HTTP client of the names test (its libraries come along).
const HOST_TOOLS: &[&str] = &["bash", "setpriv", "curl"];

/// PID 1. `VMBED_REPO` (the shared repository's path) and `VMBED_CMD` (a script in it) come
/// from the kernel command line. Everything it needs that fails stops the guest with a
/// reason; the host reads `VMBED_RC=<exit code>` as the last word.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
die() { echo "vmbed: $*"; echo "VMBED_RC=${rc:-96}"; poweroff -f; }
must() { "$@" || die "failed: $*"; }
must mount -t sysfs sysfs /sys
must mount -t devtmpfs devtmpfs /dev
must mount -t tracefs tracefs /sys/kernel/tracing
must mount -t debugfs debugfs /sys/kernel/debug
must mount -t securityfs securityfs /sys/kernel/security
must mount -t bpf bpf /sys/fs/bpf
must mount -t cgroup2 cgroup2 /sys/fs/cgroup
must mount -t tmpfs tmpfs /tmp
must ip link set lo up
while read -r module params; do
    must modprobe "$module" $params
done < /lib/modules/vmbed-load
echo "VMBED_UNAME=$(uname -r)"
if [ -e /sys/kernel/btf/vmlinux ]; then echo "VMBED_BTF=yes"; else echo "VMBED_BTF=no"; fi
must mkdir -p "$VMBED_REPO"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 repo "$VMBED_REPO" ||
    { rc=97; die "cannot mount the repository over 9p at $VMBED_REPO"; }
cd "$VMBED_REPO"
echo "VMBED_START"
sh "$VMBED_CMD"
rc=$?
sync
echo "VMBED_RC=$rc"
poweroff -f
"#;

/// Build the initramfs for `k` in `dir`; `lib_users` are host binaries the guest will run from
/// the share (their shared libraries go in; non-ELF or static files are skipped).
pub fn build(k: &Kernel, p: &Prepared, dir: &Path, lib_users: &[PathBuf]) -> Result<PathBuf> {
    let stage = dir.join("initramfs");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    for d in "bin sbin usr/bin usr/sbin usr/local/bin proc sys dev tmp root etc".split(' ') {
        fs::create_dir_all(stage.join(d))?;
    }
    run(Command::new("cp")
        .arg("-a")
        .arg(p.modules().join("."))
        .arg(&stage))?;
    fs::write(stage.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(stage.join("etc/group"), "root:x:0:\n")?;
    write_exec(&stage.join("init"), INIT.as_bytes())?;

    if k.arch == Arch::host() {
        let busybox = which("busybox")?;
        let mut users = vec![busybox.clone()];
        fs::copy(&busybox, stage.join("bin/busybox"))?;
        for t in HOST_TOOLS {
            let path = which(t)?;
            fs::copy(&path, stage.join("usr/local/bin").join(t))?;
            users.push(path);
        }
        users.extend(lib_users.iter().cloned());
        for lib in shared_libraries(&users)? {
            let to = stage.join(lib.strip_prefix("/")?);
            fs::create_dir_all(to.parent().unwrap())?;
            fs::copy(&lib, &to).with_context(|| format!("copy {}", lib.display()))?;
        }
    } else {
        fs::copy(p.busybox(), stage.join("bin/busybox"))?;
    }

    // The host's busybox writes the archive (uncompressed: nothing to unpack under TCG).
    let out = dir.join("initramfs.cpio");
    let mut find = Command::new("find")
        .arg(".")
        .current_dir(&stage)
        .stdout(Stdio::piped())
        .spawn()
        .context("run find")?;
    let mut cpio = Command::new(which("busybox")?);
    cpio.args(["cpio", "-o", "-H", "newc"])
        .current_dir(&stage)
        .stdin(find.stdout.take().unwrap())
        .stdout(fs::File::create(&out)?)
        .stderr(Stdio::null());
    let status = cpio
        .status()
        .with_context(|| format!("run {}", describe(&cpio)))?;
    ensure!(
        find.wait()?.success() && status.success(),
        "writing {} failed",
        out.display()
    );
    Ok(out)
}

fn write_exec(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn which(tool: &str) -> Result<PathBuf> {
    let o = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()?;
    ensure!(o.status.success(), "{tool} is not installed");
    Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// What `ldd` lists for `bins` (the dynamic loader included), as absolute paths.
fn shared_libraries(bins: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for b in bins {
        let o = Command::new("ldd").arg(b).output().context("run ldd")?;
        if !o.status.success() {
            continue; // static, or not a program
        }
        for word in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            let p = PathBuf::from(word);
            if p.is_absolute() && !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    Ok(libs)
}
