#!/usr/bin/env bash
# Host mode: record the running emulator's process tree (qemu) from the Linux host. Guest
# traffic leaves through the emulator process (user-mode networking), so destinations are
# measured per session; a host webcam opened for the virtual camera shows as camera access.
#
# Usage: scripts/host-record.sh [--duration 60s] [--out DIR] [--pid PID] [-- EXTRA emuwatch record ARGS]
#   Without --pid the oldest process named qemu-system-* is taken (the emulator's engine).
#   EMUWATCH=/path/to/emuwatch picks the binary (default: target/release/emuwatch, then PATH).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/android-common.sh"

duration=60s out="" pid="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="${2:?--duration needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --pid) pid="${2:?--pid needs a pid}"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
emuwatch="${EMUWATCH:-}"
if [ -z "$emuwatch" ]; then
  if [ -x "$root/target/release/emuwatch" ]; then emuwatch="$root/target/release/emuwatch"
  else emuwatch="$(command -v emuwatch 2>/dev/null || true)"; fi
fi
[ -n "$emuwatch" ] && [ -x "$emuwatch" ] || die "emuwatch not found: cargo xtask build (or set EMUWATCH=)"
[ "$(id -u)" = 0 ] || die "recording loads eBPF programs: run as root"
if [ -z "$pid" ]; then
  command -v pgrep >/dev/null 2>&1 || die "pgrep not found (apt-get install procps), or give --pid"
  pid="$(pgrep -o -f '(^|/)qemu-system-[a-z0-9_]+' || true)"
  [ -n "$pid" ] || die "no running emulator (no qemu-system-* process): start one with scripts/emulator-start.sh, or give --pid"
fi
[ -n "$out" ] || out="$root/sessions/host-$(date -u +%Y%m%dT%H%M%SZ)"
say "recording the emulator (pid $pid and its threads/children) for $duration into $out"
exec "$emuwatch" record --pid "$pid" --duration "$duration" --out "$out" "${extra[@]}"
