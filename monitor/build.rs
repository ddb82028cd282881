//! Compiles `../monitor-ebpf` for the BPF target and leaves the object at `$OUT_DIR/monitor.bpf.o`
//! for `aya::include_bytes_aligned!`. Two toolchains are supported, detected in this order:
//!
//! 1. Debian's `rustc-web` (`/usr/bin/rustc`) with the prebuilt `core` for `bpfel-unknown-none`
//!    (package `libstd-rust-web-dev-bpf`): no nightly, no build-std. `scripts/setup.sh` installs it.
//! 2. The standard aya toolchain: rustup `nightly` with `rust-src` (`-Z build-std=core`).
//!
//! `bpf-linker` is taken from `$BPF_LINKER`, the project-local `.tools/bin/`, or `PATH`.
//! `EMUWATCH_EBPF_OBJ=/path/to/object` skips the build and embeds a prebuilt object.
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn find_in_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: cannot build emuwatch's eBPF programs: {msg}");
    std::process::exit(1);
}

fn fail_toolchain(msg: &str) -> ! {
    eprintln!("\nerror: cannot build emuwatch's eBPF programs: {msg}");
    eprintln!(
        "       fix: run `scripts/setup.sh` as root (installs rustc-web, libstd-rust-web-dev-bpf,\n            llvm-22-dev and builds bpf-linker into .tools/), or install the aya toolchain:\n            rustup toolchain install nightly --component rust-src && cargo install bpf-linker\n"
    );
    std::process::exit(1);
}

enum Toolchain {
    /// Debian rustc-web: a stable rustc with a prebuilt core for the BPF target.
    DebianRustcWeb(PathBuf),
    /// rustup nightly with rust-src: build core from source.
    Nightly,
}

/// Does `sysroot_of` (a command printing a sysroot) name a sysroot that contains `rel`?
fn sysroot_has(mut sysroot_of: Command, rel: &str) -> bool {
    sysroot_of
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&root).join(rel).is_dir()
        })
        .unwrap_or(false)
}

fn detect() -> Option<Toolchain> {
    let debian =
        PathBuf::from(env::var_os("EBPF_RUSTC").unwrap_or_else(|| "/usr/bin/rustc".into()));
    let mut debian_sysroot = Command::new(&debian);
    debian_sysroot.args(["--print", "sysroot"]);
    if debian.is_file() && sysroot_has(debian_sysroot, "lib/rustlib/bpfel-unknown-none/lib") {
        return Some(Toolchain::DebianRustcWeb(debian));
    }
    let mut nightly_sysroot = Command::new("rustup");
    nightly_sysroot.args(["run", "nightly", "rustc", "--print", "sysroot"]);
    sysroot_has(nightly_sysroot, "lib/rustlib/src/rust/library/core").then_some(Toolchain::Nightly)
}

fn main() {
    for v in ["EMUWATCH_EBPF_OBJ", "EBPF_RUSTC", "BPF_LINKER"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let ebpf_dir = workspace.join("monitor-ebpf");
    let common_dir = workspace.join("monitor-common");
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        common_dir.join("src").display()
    );
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let dst = out_dir.join("monitor.bpf.o");

    if let Some(obj) = env::var_os("EMUWATCH_EBPF_OBJ") {
        println!("cargo:rerun-if-changed={}", Path::new(&obj).display());
        if let Err(e) = std::fs::copy(&obj, &dst) {
            fail(&format!("EMUWATCH_EBPF_OBJ={obj:?}: {e}"));
        }
        return;
    }

    let linker = find_linker(&workspace);
    println!("cargo:rerun-if-changed={}", linker.display());
    let Some(toolchain) = detect() else {
        fail_toolchain(
            "neither Debian rustc-web with the BPF core nor rustup nightly with rust-src found",
        )
    };
    let target = "bpfel-unknown-none";
    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = ebpf_build(&toolchain, &ebpf_dir, &target_dir, target, &linker);
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => fail(&format!("could not run {cmd:?}: {e}")),
    };
    if !status.success() {
        fail(&format!(
            "the eBPF build failed ({status}); see the compiler output above"
        ));
    }
    let obj = target_dir.join(target).join("release").join("monitor");
    if let Err(e) = std::fs::copy(&obj, &dst) {
        fail(&format!("copy {}: {e}", obj.display()));
    }
}

/// bpf-linker: $BPF_LINKER, the one `cargo xtask setup` installs in .tools/bin, or PATH's.
fn find_linker(workspace: &Path) -> PathBuf {
    env::var_os("BPF_LINKER")
        .map(PathBuf::from)
        .or_else(|| Some(workspace.join(".tools/bin/bpf-linker")).filter(|p| p.is_file()))
        .or_else(|| find_in_path("bpf-linker"))
        .unwrap_or_else(|| fail_toolchain("bpf-linker not found (.tools/bin, PATH or $BPF_LINKER)"))
}

/// The inner `cargo build` of monitor-ebpf for `target`, with the toolchain found, bpf-linker,
/// BTF and none of the outer build's compiler settings.
fn ebpf_build(
    toolchain: &Toolchain,
    ebpf_dir: &Path,
    target_dir: &Path,
    target: &str,
    linker: &Path,
) -> Command {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let mut cmd = match toolchain {
        Toolchain::DebianRustcWeb(_) => {
            Command::new(env::var_os("CARGO").unwrap_or("cargo".into()))
        }
        Toolchain::Nightly => {
            let mut c = Command::new("rustup");
            c.args(["run", "nightly", "cargo"]);
            c
        }
    };
    cmd.current_dir(ebpf_dir)
        .args([
            "build",
            "--release",
            "--bins",
            "--target",
            target,
            "--target-dir",
        ])
        .arg(target_dir)
        .arg("--manifest-path")
        .arg(ebpf_dir.join("Cargo.toml"));
    // Keep the outer (userspace) build's compiler settings out of the inner build.
    for k in [
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "LD_LIBRARY_PATH",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(k);
    }
    let rustflags =
        format!("--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf");
    match toolchain {
        Toolchain::DebianRustcWeb(rustc) => {
            // aya-ebpf enables one unstable feature (asm_experimental_arch); allow it for that
            // crate only. Debian's rustc is a stable build.
            cmd.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "aya_ebpf");
        }
        Toolchain::Nightly => {
            cmd.arg("-Zbuild-std=core");
        }
    }
    cmd.env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER", linker)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    cmd
}
