#!/usr/bin/env bash
# Render an emuwatch HTML report in real headless Chromium: dump the DOM the browser built and
# take a screenshot, with everything that would reach the network switched off.
#
# Usage: scripts/check-html.sh REPORT.html [OUT_DIR]
#   Writes OUT_DIR/dom.html (the DOM after parsing and running the page's script),
#   OUT_DIR/screenshot.png and OUT_DIR/console.log (the page's console messages: script errors
#   and Content-Security-Policy violations; empty for a good report), default OUT_DIR: a new
#   temporary directory; prints the paths. CHECK_HTML_WINDOW=W,H sets the screenshot size.
#   Installs Debian's `chromium` with apt-get when no Chromium is on PATH (needs root);
#   set CHROMIUM=/path/to/chromium to use another build.
#
# The report is opened from a file:// URL; its Content-Security-Policy forbids every fetch, and
# the flags below stop Chromium's own background traffic (updates, sync, field trials).
set -euo pipefail

report="${1:?usage: scripts/check-html.sh REPORT.html [OUT_DIR]}"
[ -f "$report" ] || { echo "check-html: no such file: $report" >&2; exit 2; }
out="${2:-$(mktemp -d -t emuwatch-html.XXXXXX)}"
mkdir -p "$out"

find_chromium() {
  if [ -n "${CHROMIUM:-}" ]; then echo "$CHROMIUM"; return 0; fi
  local c
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

if ! browser="$(find_chromium)"; then
  if [ "$(id -u)" != 0 ]; then
    echo "check-html: Chromium is not installed; as root run: apt-get install -y chromium" >&2
    exit 2
  fi
  echo "check-html: installing Debian's chromium (apt-get)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  browser="$(find_chromium)"
fi

url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
profile="$(mktemp -d -t emuwatch-chromium.XXXXXX)"
trap 'rm -rf "$profile"' EXIT
flags=(
  --headless --no-sandbox --disable-gpu
  --disable-background-networking --disable-component-update --disable-sync
  --disable-default-apps --disable-extensions --disable-domain-reliability
  --no-default-browser-check --no-first-run --metrics-recording-only
  --disable-features=Translate,OptimizationHints,MediaRouter
  --user-data-dir="$profile"
  --hide-scrollbars --window-size="${CHECK_HTML_WINDOW:-1280,2400}"
  # Page console messages (script errors, Content-Security-Policy violations) go to the log
  # as `INFO:CONSOLE` lines.
  --enable-logging=stderr --v=0
)

# --dump-dom prints the serialised DOM after load (the script has run by then).
timeout 120 "$browser" "${flags[@]}" --dump-dom "$url" >"$out/dom.html" 2>"$out/chromium-dom.log"
timeout 120 "$browser" "${flags[@]}" --screenshot="$out/screenshot.png" "$url" >/dev/null 2>"$out/chromium-shot.log"

grep -h 'INFO:CONSOLE' "$out/chromium-dom.log" "$out/chromium-shot.log" >"$out/console.log" || true
[ -s "$out/dom.html" ] || { echo "check-html: Chromium dumped no DOM (see $out/chromium-dom.log)" >&2; exit 1; }
[ -s "$out/screenshot.png" ] || { echo "check-html: Chromium wrote no screenshot (see $out/chromium-shot.log)" >&2; exit 1; }
echo "dom: $out/dom.html"
echo "screenshot: $out/screenshot.png"
echo "console: $out/console.log ($(wc -l <"$out/console.log") messages)"
