#!/usr/bin/env bash
# Run a scenario inside the emulator guest (guest mode: per-app attribution by package uid)
# and pull the session back.
#
# Usage: scripts/guest-run.sh SCENARIO.toml [--out DIR] [--binary FILE] [--serial SERIAL]
#                             [-- EXTRA emuwatch run ARGS]
#   SCENARIO  a scenario whose target is a package (see scenarios/android-*.toml); its steps run
#             in the guest, so they use `am`, `input`, `pidof` directly (no `adb shell`).
#   --binary  the static emuwatch (default: what scripts/build-guest.sh builds)
#   --out     where the session is pulled to (default: sessions/guest-<scenario>-<time>)
# Exit status: that of `emuwatch run` in the guest (0 pass, 1 violation, 2 error).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/android-common.sh"

scenario="" out="" binary="$root/target/x86_64-unknown-linux-gnu/release/emuwatch" extra=()
SERIAL="${ANDROID_SERIAL:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
    --serial) SERIAL="${2:?--serial needs a serial}"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$scenario" ] || die "one scenario at a time"; scenario="$1"; shift ;;
  esac
done
[ -n "$scenario" ] || die "give a scenario file (see --help)"
[ -f "$scenario" ] || die "no such scenario: $scenario"
[ -x "$binary" ] || die "no emuwatch for the guest at $binary: build it with scripts/build-guest.sh (or give --binary)"
find_adb

name="$(basename "$scenario" .toml)"
package="$(sed -n 's/^[[:space:]]*package[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$scenario" | head -1)"
[ -n "$out" ] || out="$root/sessions/guest-$name-$(date -u +%Y%m%dT%H%M%SZ)"
dir=/data/local/tmp/emuwatch
remote_session="$dir/sessions/$name"

say "adb root"
adb_ root >/dev/null
adb_ wait-for-device
[ "$(adb_ shell id -u | tr -d '\r')" = 0 ] || die "adbd is not root: use an emulator image without Google Play (\"google_apis\" or AOSP)"
if [ -n "$package" ]; then
  adb_ shell cat /data/system/packages.list | tr -d '\r' | grep -q "^$package " \
    || die "package $package is not installed in the guest (adb install it first)"
fi

say "pushing emuwatch and $scenario"
adb_ shell mkdir -p "$dir/sessions" >/dev/null
adb_ shell rm -rf "$remote_session" >/dev/null
adb_ push "$binary" "$dir/emuwatch" >/dev/null
adb_ shell chmod 755 "$dir/emuwatch" >/dev/null
adb_ push "$scenario" "$dir/$name.toml" >/dev/null
# A categories file next to the scenario goes along (scenarios name it relative to themselves).
for f in "$(dirname "$scenario")"/*categories*.toml; do
  [ -f "$f" ] && adb_ push "$f" "$dir/$(basename "$f")" >/dev/null
done

say "running the scenario in the guest"
set +e
adb_ shell "$dir/emuwatch" run "$dir/$name.toml" --out "$remote_session" "${extra[@]}"
status=$?
set -e

mkdir -p "$(dirname "$out")"
rm -rf "$out"
adb_ pull "$remote_session" "$out" >/dev/null || die "could not pull $remote_session (exit status of the run: $status)"
say "session: $out (report: $out/report.html, JUnit: $out/junit.xml)"
exit "$status"
