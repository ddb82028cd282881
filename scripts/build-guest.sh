#!/usr/bin/env bash
# Build a statically linked x86_64 `emuwatch` to push into an Android emulator guest (bionic
# has no glibc: the binary must carry its C library). Uses the glibc static libraries
# (libc6-dev's libc.a) with `-C target-feature=+crt-static` on x86_64-unknown-linux-gnu, which
# works with the stable toolchain this project has (no musl target download needed).
#
# Usage: scripts/build-guest.sh            -> target/x86_64-unknown-linux-gnu/release/emuwatch
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 2; }

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, then run scripts/setup.sh)"
[ "$(uname -m)" = x86_64 ] || die "this builds an x86_64 guest binary on an x86_64 host; $(uname -m) is not supported"
ls /usr/lib/x86_64-linux-gnu/libc.a >/dev/null 2>&1 || die "glibc static library missing: apt-get install libc6-dev"

bash "$root/scripts/setup.sh" >&2
cd "$root"
# RUSTFLAGS with an explicit --target applies to the target only, not to build scripts (the
# eBPF build in monitor/build.rs clears it anyway).
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --package monitor --bin emuwatch --target x86_64-unknown-linux-gnu >&2
bin="$root/target/x86_64-unknown-linux-gnu/release/emuwatch"
[ -x "$bin" ] || die "the build did not produce $bin"
if command -v file >/dev/null 2>&1; then
  desc="$(file -b "$bin")"
  case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) die "$bin is not statically linked: $desc" ;;
  esac
fi
echo "$bin"
