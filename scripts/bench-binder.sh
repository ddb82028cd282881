#!/usr/bin/env bash
# The cost of emuwatch's binder decoding on the binder ioctl hot path (docs/BENCHMARKS.md,
# "Binder calls"): N synchronous binder calls (BINDER_WRITE_READ with a BC_TRANSACTION, the
# reply read back) by `emuwatch-binderapp app repeat=...`, timed by the caller, under three
# conditions, interleaved and rotated, REPS times each:
#   none    no emuwatch
#   other   `emuwatch record --pid P` of another process: the caller is not a target, so each
#           binder ioctl costs it only the entry probe's command compare and target check
#   target  `emuwatch record --pid CALLER`: every call is decoded and becomes a binder_call and
#           a clipboard event (the call is IClipboard.getPrimaryClip)
# The caller starts first and waits; emuwatch (other, target: `record --pid`) attaches; then the
# caller runs its calls. Per call: the caller's wall time and CPU time, and, with
# kernel.bpf_stats_enabled=1 (set here), the run time of emuwatch's BPF programs (the sum of
# run_time_ns in the fdinfo of its program fds, before and after: every program, whoever ran
# it) and emuwatch's own CPU time.
# Needs /dev/binder: run it in the kernel test bed,
#   cargo xtask vm boot debian-6.1 -- bash scripts/bench-binder.sh [N] [REPS] [BUILD]
# BUILD is the cargo profile directory holding emuwatch and emuwatch-binderapp (default
# release: `cargo build --release -p monitor` first). Prints one line per run and a summary:
# median ns per call per condition and the ratios to `none`.
set -euo pipefail
N=${1:-20000}
REPS=${2:-5}
BUILD=${3:-release}
cd "$(dirname "$0")/.."
if [[ ${PIN:-0} == 1 && -z ${PINNED:-} ]]; then
    command -v taskset >/dev/null || { echo "bench-binder: PIN=1 needs taskset" >&2; exit 2; }
    PINNED=1 exec taskset -c 0 bash "$0" "$@"
fi
EW=target/$BUILD/emuwatch
APP=target/$BUILD/emuwatch-binderapp
for b in "$EW" "$APP"; do
    [[ -x $b ]] || { echo "bench-binder: $b missing (cargo build --profile $BUILD -p monitor)" >&2; exit 2; }
done
[[ -e /dev/binder ]] || { echo "bench-binder: no /dev/binder on this kernel: run it in the kernel test bed" >&2; exit 2; }
[[ -e /sys/kernel/tracing/events ]] || mount -t tracefs nodev /sys/kernel/tracing
W=$(mktemp -d)
cleanup() {
    for p in ${SM:-} ${SV:-} ${OTHER:-}; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
"$APP" servicemanager "$W/sm.ready" >/dev/null & SM=$!
while [[ ! -e $W/sm.ready ]]; do sleep 0.05; done
"$APP" services "$W/sv.ready" clipboard >/dev/null & SV=$!
while [[ ! -e $W/sv.ready ]]; do sleep 0.05; done
sleep 1000000 & OTHER=$!
STEP="repeat=$N,clipboard,android.content.IClipboard,4"
# PIN=1: everything on CPU 0 (caller, callee, emuwatch), so a call's wake-ups are same-CPU
# switches instead of cross-CPU ones (whose latency dominates the wall time under QEMU/TCG).

ns_of() { sed -n 's/.*"step":"repeat".*"ns_per_call":\([0-9]*\),.*/\1/p' "$1"; }
cpu_of() { sed -n 's/.*"step":"repeat".*"cpu_ns_per_call":\([0-9]*\).*/\1/p' "$1"; }

# BPF time: with kernel.bpf_stats_enabled, each program's fdinfo in emuwatch's process holds
# run_time_ns and run_cnt. Sums over emuwatch's programs, and emuwatch's own CPU ticks
# (USER_HZ: 100 on x86).
bpf_snap() { # pid -> "run_time_ns run_cnt cpu_ticks"
    echo "$(awk '/^run_time_ns:/{t+=$2} /^run_cnt:/{c+=$2} END{print t+0, c+0}' /proc/$1/fdinfo/* 2>/dev/null) \
$(awk '{print $14 + $15}' /proc/$1/stat)"
}

run() { # condition rep
    local out=$W/$1.$2.out sess=$W/$1.$2.session go=$W/go.$1.$2 pidf=$W/pid.$1.$2
    "$APP" app "pidfile=$pidf" "waitfile=$go" "$STEP" "waitfile=$go.done" >"$out" & local app=$!
    while [[ ! -s $pidf ]]; do sleep 0.02; done
    local ew= before= after= extra=
    if [[ $1 != none ]]; then
        local who=$OTHER
        [[ $1 == target ]] && who=$app
        "$EW" record --quiet --out "$sess" --pid "$who" >/dev/null 2>"$W/ew.err" & ew=$!
        until [[ -s $sess/session.json ]] && grep -q '"attached": true' "$sess/session.json"; do
            kill -0 $ew 2>/dev/null || { cat "$W/ew.err" >&2; exit 1; }
            sleep 0.1
        done
        sleep 0.5
        before=$(bpf_snap $ew)
    fi
    touch "$go"
    # The caller stays until its calls are counted (a --pid recording ends with its target).
    until grep -q '"step":"repeat"' "$out"; do
        kill -0 $app 2>/dev/null || { echo "bench-binder: the caller died" >&2; cat "$out" >&2; exit 1; }
        sleep 0.05
    done
    if [[ -n $ew ]]; then
        # A --pid recording must outlive its target: gone now is a bug, not a figure.
        [[ -d /proc/$ew/fdinfo ]] || { echo "bench-binder: emuwatch ended before its target (run $2 $1)" >&2; cat "$W/ew.err" >&2; exit 1; }
        after=$(bpf_snap $ew)
    fi
    touch "$go.done"
    wait $app
    if [[ -n $ew ]]; then
        kill -INT $ew 2>/dev/null || true; wait $ew || true
        if [[ -n $after ]]; then
        read -r t0 c0 k0 <<<"$before"; read -r t1 c1 k1 <<<"$after"
        extra=$(awk -v dt=$((t1 - t0)) -v dc=$((c1 - c0)) -v dk=$((k1 - k0)) -v n="$N" -v hz=100 \
            'BEGIN {if (dt < 0 || dc < 0) print "bpf_snapshot=negative_delta"; else printf "bpf_ns_per_call=%d bpf_runs_per_call=%.2f emuwatch_cpu_ns_per_call=%d", dt / n, dc / n, dk * 1e9 / hz / n}')
        fi
    fi
    local ns cpu; ns=$(ns_of "$out"); cpu=$(cpu_of "$out")
    [[ -n $ns && -n $cpu ]] || { echo "bench-binder: no result from $1 run $2" >&2; cat "$out" >&2; exit 1; }
    local calls=
    [[ $1 == target ]] && calls="binder_call_events=$(grep -c '"kind":"binder_call"' "$sess/events.jsonl" || true)"
    [[ -n $ew ]] && calls="$calls $(grep -o '"stop_reason": "[a-z_]*"' "$sess/session.json" | tr -d '" ')"
    echo "run $2 $1 wall_ns_per_call=$ns cpu_ns_per_call=$cpu $extra $calls"
    local bpf; bpf=$(sed -n 's/.*bpf_ns_per_call=\([0-9]*\).*/\1/p' <<<"$extra")
    echo "$1 $ns $cpu ${bpf:-NA}" >>"$W/results"
    rm -rf "$sess"
}

echo 1 >/proc/sys/kernel/bpf_stats_enabled
conds=(none other target)
echo "bench-binder: N=$N calls per run, $REPS runs per condition, $(nproc) CPUs (pinned to CPU 0: ${PINNED:-no}), kernel $(uname -r), $BUILD build"
"$APP" app "repeat=200,clipboard,android.content.IClipboard,4" >/dev/null # warm-up
for ((r = 1; r <= REPS; r++)); do
    for ((i = 0; i < 3; i++)); do
        run "${conds[(i + r) % 3]}" "$r"
    done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
col() { awk -v c="$1" -v k="$2" '$1==c{print $k}' "$W/results"; }
wbase=$(col none 2 | median)
cbase=$(col none 3 | median)
for c in "${conds[@]}"; do
    w=$(col "$c" 2 | median)
    u=$(col "$c" 3 | median)
    b=$(col "$c" 4 | grep -v NA | median || true)
    awk -v c="$c" -v w="$w" -v u="$u" -v b="$b" -v wb="$wbase" -v cb="$cbase" \
        -v wall="$(col "$c" 2 | sort -n | tr '\n' ' ')" -v cpu="$(col "$c" 3 | sort -n | tr '\n' ' ')" \
        -v bpf="$(col "$c" 4 | sort -n | tr '\n' ' ')" \
        'BEGIN {printf "summary %-6s wall %8d ns/call (x%.3f)  caller CPU %8d ns/call (x%.3f)  BPF %6d ns/call  runs wall: %s cpu: %s bpf: %s\n", c, w, w / wb, u, u / cb, b, wall, cpu, bpf}'
done
