#!/usr/bin/env bash
# Run a scenario inside the emulator guest (guest mode: per-app attribution by package uid)
# and pull the session back. A preflight comes first: adbd as root, the guest's build type and
# ABI (which binary to push), SELinux, where tracefs is and which syscall tracepoints exist,
# BTF, then `emuwatch doctor` in the guest. Any failure stops with one line (exit 2).
#
# Usage: scripts/guest-run.sh SCENARIO.toml [--out DIR] [--binary FILE] [--serial SERIAL]
#                             [--permissive] [--syscall-probes auto|raw|per-syscall]
#                             [--preflight-only] [-- EXTRA emuwatch run ARGS]
#   SCENARIO  a scenario whose target is a package (see scenarios/android-*.toml); its steps run
#             in the guest, so they use `am`, `input`, `pidof` directly (no `adb shell`).
#   --binary  the static emuwatch (default by the guest's ABI: x86_64 ->
#             target/x86_64-unknown-linux-gnu/release/emuwatch, arm64-v8a ->
#             target/aarch64-unknown-linux-gnu/release/emuwatch; see scripts/build-guest.sh)
#   --out     where the session is pulled to (default: sessions/guest-<scenario>-<time>)
#   --permissive      SELinux Enforcing blocks BPF loads outside bpfloader: `setenforce 0` for
#                     the doctor and the run, `setenforce 1` afterwards (also on errors, Ctrl-C)
#   --syscall-probes  passed to `emuwatch doctor` and `emuwatch run` in the guest
#   --preflight-only  the checks and `emuwatch doctor` only (SCENARIO optional); prints a summary
# Exit status: that of `emuwatch run` in the guest (0 pass, 1 violation, 2 error); with
# --preflight-only 0 when every check passed; 2 when a check failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/android-common.sh"

scenario="" out="" binary="" extra=() permissive=0 preflight_only=0 syscall_probes=""
SERIAL="${ANDROID_SERIAL:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
    --serial) SERIAL="${2:?--serial needs a serial}"; shift 2 ;;
    --permissive) permissive=1; shift ;;
    --preflight-only) preflight_only=1; shift ;;
    --syscall-probes) syscall_probes="${2:?--syscall-probes needs auto, raw or per-syscall}"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$scenario" ] || die "one scenario at a time"; scenario="$1"; shift ;;
  esac
done
case "$syscall_probes" in
  ""|auto|raw|per-syscall) ;;
  *) die "--syscall-probes takes auto, raw or per-syscall, not $syscall_probes" ;;
esac
if [ "$preflight_only" = 0 ]; then
  [ -n "$scenario" ] || die "give a scenario file (see --help)"
fi
[ -z "$scenario" ] || [ -f "$scenario" ] || die "no such scenario: $scenario"
[ -z "$binary" ] || [ -x "$binary" ] || die "no emuwatch for the guest at $binary: build it with scripts/build-guest.sh (or give --binary)"
find_adb

dir=/data/local/tmp/emuwatch
name="" package=""
if [ -n "$scenario" ]; then
  name="$(basename "$scenario" .toml)"
  package="$(sed -n 's/^[[:space:]]*package[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$scenario" | head -1)"
  [ -n "$out" ] || out="$root/sessions/guest-$name-$(date -u +%Y%m%dT%H%M%SZ)"
fi
remote_session="$dir/sessions/$name"
probe_args=()
[ -z "$syscall_probes" ] || probe_args=(--syscall-probes "$syscall_probes")
summary=()   # "what  finding" lines for --preflight-only
note() { summary+=("$(printf '%-10s %s' "$1" "$2")"); say "$1: $2"; }

# `adb shell CMD` without the CRs a pty adds; the status is adb's (that of CMD in the guest).
gshell() { adb_ shell "$@" | tr -d '\r'; }
# Whether a path exists in the guest (`test` in the guest, its status through adb).
gtest() { adb_ shell test "$1" "$2" >/dev/null 2>&1; }

# SELinux goes back to Enforcing whenever this script set it permissive: after the run, and on
# every way out (errors, a failed run or doctor, Ctrl-C, TERM). Known failures restore it before
# their error line, so that the error stays the last line.
selinux_changed=0
restore_selinux() {
  [ "$selinux_changed" = 1 ] || return 0
  selinux_changed=0
  if adb_ shell setenforce 1 >/dev/null 2>&1; then
    say "SELinux restored to Enforcing (setenforce 1)"
  else
    say "warning: could not restore SELinux: run adb shell setenforce 1"
  fi
}
trap restore_selinux EXIT
trap 'restore_selinux; exit 130' INT
trap 'restore_selinux; exit 143' TERM

# --- root, build type, ABI ---------------------------------------------------------------------
say "adb root"
root_said="$(adb_ root 2>&1 | tr -d '\r')" || die "adb root failed: $(echo "$root_said" | tr '\n' ' ')"
adb_ wait-for-device
build_type="$(gshell getprop ro.build.type)" || die "adb shell getprop failed: is the emulator running? (adb devices)"
abi="$(gshell getprop ro.product.cpu.abi)" || die "adb shell getprop failed"
sdk="$(gshell getprop ro.build.version.sdk)" || die "adb shell getprop failed"
uid="$(gshell id -u)" || die "adb shell id -u failed"
if [ "$uid" != 0 ]; then
  die "adbd cannot run as root on this image (ro.build.type=${build_type:-unknown}, uid $uid): Google Play system images have no root; use a \"Google APIs\" or AOSP image instead, e.g. system-images;android-${sdk:-34};google_apis;${abi:-x86_64}"
fi
note guest "${build_type:-unknown} build, ABI ${abi:-unknown}, API ${sdk:-unknown}; adbd runs as root"

case "$abi" in
  x86_64) want_machine=62 default_binary="$root/target/x86_64-unknown-linux-gnu/release/emuwatch" build_hint="scripts/build-guest.sh" ;;
  arm64-v8a) want_machine=183 default_binary="$root/target/aarch64-unknown-linux-gnu/release/emuwatch" build_hint="scripts/build-guest.sh --arch arm64" ;;
  *) die "guest ABI ${abi:-unknown} is not supported: emuwatch runs in x86_64 and arm64-v8a images" ;;
esac
if [ -z "$binary" ]; then
  binary="$default_binary"
  [ -x "$binary" ] || die "no emuwatch for the $abi guest at $binary: build it with $build_hint (or give --binary)"
fi
# The ELF machine (bytes 18-19, little-endian): 62 x86_64, 183 aarch64.
machine="$(od -An -t u2 -j 18 -N 2 "$binary" 2>/dev/null | tr -d ' \n' || true)"
[ "$(head -c 4 "$binary" | od -An -c | tr -d ' \n')" = '177ELF' ] || die "$binary is not an ELF executable"
case "$machine" in 62) arch=x86_64 ;; 183) arch=aarch64 ;; *) arch="ELF machine $machine" ;; esac
[ "$machine" = "$want_machine" ] || die "$binary is built for $arch, not for the $abi guest: build it with $build_hint (or give --binary)"
note binary "$binary"

if [ -n "$package" ]; then
  # Read whole, then searched: `grep -q` in the pipe would end it early, and with pipefail the
  # SIGPIPE of the writer would read as "not installed" on a long list.
  packages="$(gshell cat /data/system/packages.list)" || die "could not read /data/system/packages.list in the guest"
  awk -v p="$package" '$1 == p { found = 1 } END { exit !found }' <<<"$packages" \
    || die "package $package is not installed in the guest (adb install it first)"
fi

# --- SELinux -----------------------------------------------------------------------------------
selinux="$(gshell getenforce)" || die "adb shell getenforce failed"
case "$selinux" in
  Enforcing)
    [ "$permissive" = 1 ] || die "SELinux is Enforcing in the guest, which blocks loading BPF programs outside bpfloader: rerun with --permissive (setenforce 0 for the run, setenforce 1 afterwards)"
    note selinux "Enforcing: set to Permissive for the doctor$([ "$preflight_only" = 1 ] || echo ' and the run'), restored afterwards (--permissive)" ;;
  Permissive|Disabled) note selinux "$selinux already: left as is" ;;
  *) die "could not read the guest's SELinux mode (getenforce said: ${selinux:-nothing})" ;;
esac

# --- kernel: tracefs, syscall tracepoints, BTF -------------------------------------------------
kernel="$(gshell uname -r)" || die "adb shell uname -r failed"
note kernel "$kernel"
tracefs=""
for t in /sys/kernel/tracing /sys/kernel/debug/tracing; do
  if gtest -d "$t/events"; then tracefs="$t"; break; fi
done
[ -n "$tracefs" ] || die "no tracefs in the guest (neither /sys/kernel/tracing/events nor /sys/kernel/debug/tracing/events): mount it with adb shell mount -t tracefs tracefs /sys/kernel/tracing"
note tracefs "$tracefs"
has_syscalls=0 has_raw=0
gtest -d "$tracefs/events/syscalls" && has_syscalls=1
gtest -d "$tracefs/events/raw_syscalls" && has_raw=1
if [ "$has_syscalls" = 0 ] && [ "$has_raw" = 0 ]; then
  die "the guest kernel has neither syscalls nor raw_syscalls tracepoints (no $tracefs/events/syscalls or events/raw_syscalls): emuwatch cannot see its file and network syscalls"
fi
if [ "$has_syscalls" = 1 ]; then
  note syscalls "events/syscalls present (per-syscall tracepoints); events/raw_syscalls $([ "$has_raw" = 1 ] && echo present || echo missing)"
else
  note syscalls "no events/syscalls (GKI kernel, no CONFIG_FTRACE_SYSCALLS): the raw-syscalls path will be used"
fi
[ "$syscall_probes" != per-syscall ] || [ "$has_syscalls" = 1 ] \
  || die "--syscall-probes per-syscall needs events/syscalls, which this guest kernel does not have: use --syscall-probes raw or auto"
[ "$syscall_probes" != raw ] || [ "$has_raw" = 1 ] \
  || die "--syscall-probes raw needs events/raw_syscalls, which this guest kernel does not have: use --syscall-probes per-syscall or auto"
if gtest -e /sys/kernel/btf/vmlinux; then
  note btf "/sys/kernel/btf/vmlinux present"
else
  note btf "/sys/kernel/btf/vmlinux missing (CONFIG_DEBUG_INFO_BTF): the doctor will say which probes need it"
fi

# --- push, doctor, run -------------------------------------------------------------------------
say "pushing emuwatch${scenario:+ and $scenario}"
adb_ shell mkdir -p "$dir/sessions" >/dev/null
adb_ push "$binary" "$dir/emuwatch" >/dev/null
adb_ shell chmod 755 "$dir/emuwatch" >/dev/null
if [ "$preflight_only" = 0 ]; then
  adb_shell_words rm -rf "$remote_session" >/dev/null
  adb_ push "$scenario" "$dir/$name.toml" >/dev/null
  # A categories file next to the scenario goes along (scenarios name it relative to themselves).
  for f in "$(dirname "$scenario")"/*categories*.toml; do
    [ -f "$f" ] && adb_ push "$f" "$dir/$(basename "$f")" >/dev/null
  done
fi

if [ "$selinux" = Enforcing ]; then
  selinux_changed=1
  adb_ shell setenforce 0 >/dev/null || { restore_selinux; die "setenforce 0 failed in the guest: SELinux stays Enforcing and BPF programs cannot load"; }
fi

say "emuwatch doctor in the guest"
set +e
adb_shell_words "$dir/emuwatch" doctor "${probe_args[@]}"
doctor_status=$?
set -e
case "$doctor_status" in
  0) note doctor "passed" ;;
  126|127) restore_selinux; die "emuwatch could not be executed in the guest (exit $doctor_status): push a static $abi build ($build_hint)" ;;
  *) restore_selinux; die "emuwatch doctor failed in the guest (exit $doctor_status): its FAIL lines above say what is missing; nothing was run" ;;
esac

if [ "$preflight_only" = 1 ]; then
  restore_selinux
  echo "preflight passed${SERIAL:+ ($SERIAL)}:"
  printf '  %s\n' "${summary[@]}"
  exit 0
fi

say "running the scenario in the guest"
set +e
adb_shell_words "$dir/emuwatch" run "$dir/$name.toml" --out "$remote_session" "${probe_args[@]}" "${extra[@]}"
status=$?
set -e
restore_selinux

mkdir -p "$(dirname "$out")"
rm -rf "$out"
adb_ pull "$remote_session" "$out" >/dev/null || die "could not pull $remote_session (exit status of the run: $status)"
say "session: $out (report: $out/report.html, JUnit: $out/junit.xml)"
exit "$status"
