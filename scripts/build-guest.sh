#!/usr/bin/env bash
# Build a statically linked `emuwatch` to push into an Android emulator guest (bionic has no
# glibc: the binary must carry its C library). Both routes link glibc's static `libc.a` with
# `-C target-feature=+crt-static`, which needs no rustup target download (rustup cannot fetch
# the musl targets on these machines). emuwatch resolves no host or user names, so a static
# glibc's missing NSS does not matter. The eBPF object is built by monitor/build.rs as usual
# (for bpfel, with `bpf_target_arch` set to the guest's architecture) and embedded.
#
#   --arch x86_64 (default)  x86_64 emulator images. The project's stable toolchain (rustup),
#                            Debian's libc6-dev for libc.a.
#   --arch arm64             arm64 images (Apple-silicon / ARM hosts), cross-built on an x86_64
#                            Debian host from Debian packages only:
#                              * libstd-rust-web-dev:arm64: the aarch64 std for Debian's
#                                rustc-web (/usr/bin/rustc, which setup.sh installs for the
#                                eBPF build). The userspace build therefore runs with
#                                RUSTC=/usr/bin/rustc: rustup's std has no aarch64 target here.
#                                It is a Multi-Arch: same package, co-installable with the
#                                amd64 rustc-web (apt keeps both at the same version);
#                              * gcc-aarch64-linux-gnu (the linker) and libc6-dev-arm64-cross
#                                (aarch64 glibc, libc.a).
#                            To install the first one, this script ADDS THE FOREIGN DPKG
#                            ARCHITECTURE arm64 (`dpkg --add-architecture arm64`, then
#                            `apt-get update`) if it is not there yet. Installs need root;
#                            without it, the script names what is missing and stops.
#   --with-simapp            also build `emuwatch-simapp` (the test workload) the same way.
#
# Prints the path of the binary (then of emuwatch-simapp, with --with-simapp) on stdout:
#   target/x86_64-unknown-linux-gnu/release/emuwatch    or
#   target/aarch64-unknown-linux-gnu/release/emuwatch
# Errors: one line on stderr, exit 2. An arm64 binary can be tried on the host with
# qemu-aarch64-static (Debian qemu-user-static); the script does so with `--version` when that
# is installed. eBPF cannot load under qemu-user (no bpf syscall): `doctor` reports ENOSYS there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 2; }
say() { printf 'build-guest: %s\n' "$*" >&2; }

arch=x86_64 simapp=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || die "--arch needs x86_64 or arm64"; arch="$2"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    --with-simapp) simapp=1; shift ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (usage: scripts/build-guest.sh [--arch x86_64|arm64] [--with-simapp])" ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64 triple=x86_64-unknown-linux-gnu ;;
  arm64|aarch64) arch=arm64 triple=aarch64-unknown-linux-gnu ;;
  *) die "unsupported --arch $arch (supported: x86_64, arm64)" ;;
esac

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, then run scripts/setup.sh)"
[ "$(uname -m)" = x86_64 ] || die "guest binaries are built on an x86_64 host; $(uname -m) is not supported"

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

env_args=()
if [ "$arch" = x86_64 ]; then
  ls /usr/lib/x86_64-linux-gnu/libc.a >/dev/null 2>&1 || die "glibc static library missing: apt-get install libc6-dev"
  bash "$root/scripts/setup.sh" >&2
else
  # rustc-web (and the eBPF toolchain) first: the aarch64 std must match its version.
  bash "$root/scripts/setup.sh" >&2
  std_ok() { compgen -G "/usr/lib/rustlib/$triple/lib/libstd-*.rlib" >/dev/null; }
  missing=()
  std_ok || missing+=(libstd-rust-web-dev:arm64)
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
  [ -e /usr/aarch64-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-arm64-cross)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages for --arch arm64: ${missing[*]} (run as root to install them; libstd-rust-web-dev:arm64 needs 'dpkg --add-architecture arm64')"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      say "adding the dpkg architecture arm64 (for libstd-rust-web-dev:arm64)"
      dpkg --add-architecture arm64
    fi
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq -o DPkg::Lock::Timeout=300 >&2 || die "apt-get update failed"
    apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    std_ok || die "libstd-rust-web-dev:arm64 installed no /usr/lib/rustlib/$triple/lib/libstd-*.rlib"
  fi
  rustc_ver="$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || true)"
  std_ver="$(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64 2>/dev/null || true)"
  [ -n "$rustc_ver" ] && [ "$rustc_ver" = "$std_ver" ] \
    || die "rustc-web ${rustc_ver:-(not installed)} and libstd-rust-web-dev:arm64 ${std_ver:-(not installed)} differ; install both at one version"
  # Debian's rustc for the whole build (build scripts run on the host with its amd64 std);
  # monitor/build.rs still builds the eBPF crate with its own settings.
  env_args=(
    RUSTC=/usr/bin/rustc
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  )
fi

cd "$root"
bins=(--bin emuwatch)
[ "$simapp" = 0 ] || bins+=(--bin emuwatch-simapp)
# RUSTFLAGS with an explicit --target applies to the target only, not to build scripts (the
# eBPF build in monitor/build.rs clears it anyway).
env "${env_args[@]}" RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --package monitor "${bins[@]}" --target "$triple" >&2 \
  || die "cargo build --target $triple failed (see above)"

want="x86-64"
[ "$arch" = arm64 ] && want="ARM aarch64"
runner=()
if [ "$arch" = arm64 ]; then
  if command -v qemu-aarch64-static >/dev/null 2>&1; then runner=(qemu-aarch64-static)
  elif command -v qemu-aarch64 >/dev/null 2>&1; then runner=(qemu-aarch64)
  else say "qemu-aarch64-static not installed (Debian qemu-user-static): not running the binary"; runner=(false)
  fi
fi
names=(emuwatch)
[ "$simapp" = 0 ] || names+=(emuwatch-simapp)
for name in "${names[@]}"; do
  bin="$root/target/$triple/release/$name"
  [ -x "$bin" ] || die "the build did not produce $bin"
  if command -v file >/dev/null 2>&1; then
    desc="$(file -b "$bin")"
    case "$desc" in *"$want"*) ;; *) die "$bin is not a $want binary: $desc" ;; esac
    case "$desc" in
      *"statically linked"*|*"static-pie linked"*) ;;
      *) die "$bin is not statically linked: $desc" ;;
    esac
  fi
  if [ "$name" = emuwatch ] && [ "${runner[0]:-}" != false ]; then
    "${runner[@]}" "$bin" --version >/dev/null || die "$bin does not run (${runner[*]:-natively} $name --version failed)"
  fi
  echo "$bin"
done
