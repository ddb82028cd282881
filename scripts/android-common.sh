# Shared by the emulator scripts: find the Android SDK tools and fail clearly without them.
# Sourced, not run.

die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 2; }
say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# $ADB, else adb on PATH, else the SDK's platform-tools.
find_adb() {
  local c
  for c in "${ADB:-}" "$(command -v adb 2>/dev/null || true)" \
           "${ANDROID_HOME:-${ANDROID_SDK_ROOT:-/nonexistent}}/platform-tools/adb"; do
    if [ -n "$c" ] && [ -x "$c" ]; then ADB="$c"; return 0; fi
  done
  die "adb not found: install the Android SDK platform-tools and put adb on PATH (or set ADB=/path/to/adb or ANDROID_HOME)"
}

# $EMULATOR, else emulator on PATH, else the SDK's emulator.
find_emulator() {
  local c
  for c in "${EMULATOR:-}" "$(command -v emulator 2>/dev/null || true)" \
           "${ANDROID_HOME:-${ANDROID_SDK_ROOT:-/nonexistent}}/emulator/emulator"; do
    if [ -n "$c" ] && [ -x "$c" ]; then EMULATOR="$c"; return 0; fi
  done
  die "emulator not found: install the Android SDK emulator package and put emulator on PATH (or set EMULATOR=/path/to/emulator or ANDROID_HOME)"
}

# adb with the chosen device (-s SERIAL when $ANDROID_SERIAL / --serial is set).
adb_() {
  if [ -n "${SERIAL:-}" ]; then "$ADB" -s "$SERIAL" "$@"; else "$ADB" "$@"; fi
}

# `adb shell` joins its arguments with spaces and the guest's sh splits the line again, so a
# word with a space or a shell character (a scenario named "my app.toml", a label value
# "device=Pixel 7", a `;` in a file name) would be split or run as a command. gq prints one word
# as the guest's sh must see it: as it is when it has only safe characters, else single-quoted.
gq() {
  case "$1" in
    "" | *[!A-Za-z0-9_./=:,+@%-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}

# `adb shell` with every argument quoted for the guest's sh (gq): the guest runs exactly these
# words.
adb_shell_words() {
  local q=() a
  for a in "$@"; do q+=("$(gq "$a")"); done
  adb_ shell "${q[@]}"
}
