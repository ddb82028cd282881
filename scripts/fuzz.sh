#!/bin/sh
# Run every fuzz target (monitor/src/fuzz.rs) for SECS seconds each (default 60), one after the other.
# Prints one line per target: cases run and time. A failure prints the (shrunk) input and
# exits non-zero. See docs/fuzzing.md.
set -eu
secs=${1:-60}
cd "$(dirname "$0")/.."
EMUWATCH_FUZZ_SECS=$secs exec cargo test -p monitor --bin emuwatch -- fuzz --test-threads=1 --nocapture
