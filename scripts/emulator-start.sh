#!/usr/bin/env bash
# Start a headless Android emulator and wait until it has booted, then restart adbd as root
# (emuwatch needs root in the guest; use a "Google APIs" or AOSP image, not "Google Play").
#
# Usage: scripts/emulator-start.sh --avd NAME [--timeout SECONDS] [--log FILE] [-- EXTRA EMULATOR ARGS]
#   Create an AVD first, e.g.:
#     sdkmanager "system-images;android-34;google_apis;x86_64"
#     avdmanager create avd -n emuwatch -k "system-images;android-34;google_apis;x86_64"
# Prints the emulator's pid when the guest is ready; writes it to target/emulator.pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/android-common.sh"

avd="" timeout=300 log="$root/target/emulator.log" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --avd) avd="${2:?--avd needs a name}"; shift 2 ;;
    --timeout) timeout="${2:?--timeout needs seconds}"; shift 2 ;;
    --log) log="${2:?--log needs a file}"; shift 2 ;;
    --serial) SERIAL="${2:?--serial needs a serial}"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$avd" ] || die "give the AVD to start: --avd NAME (list them with: emulator -list-avds)"
find_emulator
find_adb

mkdir -p "$(dirname "$log")"
say "starting $avd headless (log: $log)"
# -no-window/-no-audio: headless; -no-snapshot-save: every run starts from the same state;
# -no-boot-anim: faster boot. Software GPU works on machines without one.
"$EMULATOR" -avd "$avd" -no-window -no-audio -no-boot-anim -no-snapshot-save \
  -gpu swiftshader_indirect "${extra[@]}" >"$log" 2>&1 &
pid=$!
mkdir -p "$root/target"
echo "$pid" > "$root/target/emulator.pid"

deadline=$((SECONDS + timeout))
adb_ wait-for-device
until [ "$(adb_ shell getprop sys.boot_completed 2>/dev/null | tr -d '\r')" = 1 ]; do
  kill -0 "$pid" 2>/dev/null || die "the emulator exited during boot (see $log)"
  [ "$SECONDS" -lt "$deadline" ] || die "the guest did not boot within ${timeout}s (see $log)"
  sleep 2
done
say "booted; restarting adbd as root"
adb_ root >/dev/null
adb_ wait-for-device
[ "$(adb_ shell id -u | tr -d '\r')" = 0 ] || die "adbd is not root: use an emulator image without Google Play (\"google_apis\" or AOSP)"
echo "$pid"
