#!/usr/bin/env bash
# Idempotent toolchain set-up for building emuwatch's eBPF programs.
#
# What it ensures (and only installs what is missing):
#   * Debian packages: rustc-web (a stable rustc that ships a prebuilt `core` for
#     bpfel-unknown-none via libstd-rust-web-dev-bpf) and llvm-22-dev (bpf-linker links
#     libLLVM dynamically).
#   * bpf-linker 0.13.0 built into the project-local tools directory `.tools/` (never
#     installed system-wide).
# Machines that already have the standard aya toolchain (rustup nightly + rust-src +
# bpf-linker on PATH) need none of this; monitor/build.rs detects either.
#
# Usage: scripts/setup.sh [--check]   (--check: report what is missing, install nothing)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

log() { printf 'setup: %s\n' "$*" >&2; }

missing_debs=()
[ -x /usr/bin/rustc ] && /usr/bin/rustc --version 2>/dev/null | grep -q . || missing_debs+=(rustc-web)
ls -d /usr/lib/rustlib/bpfel-unknown-none/lib 2>/dev/null | grep -q . || missing_debs+=(libstd-rust-web-dev-bpf)
[ -e /usr/lib/llvm-22/lib/libLLVM.so ] || [ -e /usr/lib/llvm-22/lib/libLLVM-22.so ] || missing_debs+=(llvm-22-dev)

linker="$tools/bin/bpf-linker"
need_linker=0
[ -x "$linker" ] || need_linker=1

if [ "$check_only" = 1 ]; then
  [ ${#missing_debs[@]} -eq 0 ] || log "missing Debian packages: ${missing_debs[*]}"
  [ "$need_linker" = 0 ] || log "missing $linker"
  [ ${#missing_debs[@]} -eq 0 ] && [ "$need_linker" = 0 ]
  exit $?
fi

if [ ${#missing_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "need root to install Debian packages: ${missing_debs[*]}"; exit 1
  fi
  log "installing Debian packages: ${missing_debs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    rustc-web libstd-rust-web-dev-bpf llvm-22-dev >/dev/null
fi

if [ "$need_linker" = 1 ]; then
  log "building bpf-linker 0.13.0 into $tools (about a minute)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --version 0.13.0 --locked \
    --no-default-features --features llvm-22 --root "$tools" --quiet
fi
log "toolchain ready: $(/usr/bin/rustc --version), $("$linker" --version 2>/dev/null | head -1)"
