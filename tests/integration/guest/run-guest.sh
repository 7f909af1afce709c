#!/usr/bin/env bash
# run-guest.sh — boot the cached Linux guest (6.1, or 6.12) under QEMU (TCG) and run one script in it.
#
# Usage: run-guest.sh --script FILE [options]
#   --script FILE        guest script, run as `sh /test.sh` after networking is up (required)
#   --timeout SECS       hard wall-clock limit for the whole boot+run (default 300)
#   --smp N              guest CPUs (default 2)
#   --mem MiB            guest RAM (default 1024)
#   --console FILE       also write the console log to FILE (written live)
#   --append ARGS        extra kernel command-line arguments (e.g. guest.loglevel=7)
#   --file SRC:DEST      put host file SRC at DEST in the guest (repeatable; DEST absolute)
#   --env NAME=VALUE     export NAME=VALUE to the guest script (repeatable; via /test.env)
#   --nic virtio|e1000   guest NIC model (default virtio)
#   --hostfwd SPEC       add a QEMU user-net hostfwd, e.g. tcp:127.0.0.1:14420-:4420 (repeatable)
#   --cache-dir DIR      use this prepared image dir instead of calling prepare.sh
#   --kernel 6.1|6.12    guest kernel prepare.sh builds/finds (default 6.1; ignored with --cache-dir)
# Networking: QEMU user mode; guest is 10.0.2.15/24, the host's 127.0.0.1:PORT is 10.0.2.2:PORT.
# Output: the full serial console goes to stdout (live).
# Exit codes: the guest script's exit code (from the "@@GUEST-EXIT@@ N" console marker);
#   124 timeout; 125 marker missing (kernel panic, init crash, QEMU died); 126 harness failure
#   (prepare.sh failed, QEMU could not start); 77 prerequisites missing (prepare.sh, CI != true);
#   2 usage error.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="run-guest.sh"
log() { echo "$PROG: $*" >&2; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" >&2; exit 2; }
die_usage() { echo "$PROG: ERROR: $*" >&2; exit 2; }
die_harness() { echo "$PROG: ERROR: $*" >&2; exit 126; }

SCRIPT="" TIMEOUT=300 SMP=2 MEM=1024 CONSOLE="" APPEND="" NIC=virtio CACHE_DIR="" KERNEL_SERIES=""
FILES=() ENVS=() HOSTFWDS=()
need() { [ $# -ge 2 ] || die_usage "option $1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --script)    need "$@"; SCRIPT="$2"; shift 2 ;;
        --timeout)   need "$@"; TIMEOUT="$2"; shift 2 ;;
        --smp)       need "$@"; SMP="$2"; shift 2 ;;
        --mem)       need "$@"; MEM="$2"; shift 2 ;;
        --console)   need "$@"; CONSOLE="$2"; shift 2 ;;
        --append)    need "$@"; APPEND="$2"; shift 2 ;;
        --file)      need "$@"; FILES+=("$2"); shift 2 ;;
        --env)       need "$@"; ENVS+=("$2"); shift 2 ;;
        --nic)       need "$@"; NIC="$2"; shift 2 ;;
        --hostfwd)   need "$@"; HOSTFWDS+=("$2"); shift 2 ;;
        --cache-dir) need "$@"; CACHE_DIR="$2"; shift 2 ;;
        --kernel)    need "$@"; KERNEL_SERIES="$2"; shift 2 ;;
        -h|--help)   usage ;;
        *) die_usage "unknown argument: $1 (see --help)" ;;
    esac
done
[ -n "$SCRIPT" ] || die_usage "--script FILE is required"
[ -f "$SCRIPT" ] || die_usage "script not found: $SCRIPT"
for v in "$TIMEOUT" "$SMP" "$MEM"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die_usage "--timeout/--smp/--mem need positive integers (got '$v')"
done
case "$NIC" in
    virtio) NIC_DEV=virtio-net-pci ;;
    e1000)  NIC_DEV=e1000 ;;
    *) die_usage "--nic must be virtio or e1000" ;;
esac
command -v qemu-system-x86_64 >/dev/null || [ -z "$CACHE_DIR" ] || die_harness "qemu-system-x86_64 not installed (run prepare.sh)"

# ---------------------------------------------------------------------------------------------
# Cleanup: never leave QEMU running.
# ---------------------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/run-guest.XXXXXX")"
PIDFILE="$WORK/qemu.pid"
TPID="" TAILPID=""
qemu_pid() { [ -s "$PIDFILE" ] && cat "$PIDFILE" 2>/dev/null || true; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
kill_qemu() {
    local q i
    q="$(qemu_pid)"
    alive "$q" && kill -TERM "$q" 2>/dev/null || true
    alive "$TPID" && kill -TERM "$TPID" 2>/dev/null || true
    for _ in $(seq 1 25); do
        alive "$q" || alive "$TPID" || break
        sleep 0.2
    done
    alive "$q" && { log "QEMU ignored SIGTERM; sending SIGKILL"; kill -KILL "$q" 2>/dev/null || true; }
    alive "$TPID" && kill -KILL "$TPID" 2>/dev/null || true
    return 0
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    kill_qemu
    if alive "$TAILPID"; then sleep 0.3; kill "$TAILPID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM
trap 'log "hangup"; exit 129' HUP

# ---------------------------------------------------------------------------------------------
# Image.
# ---------------------------------------------------------------------------------------------
if [ -z "$CACHE_DIR" ]; then
    set +e
    "$SCRIPT_DIR/prepare.sh" ${KERNEL_SERIES:+--kernel "$KERNEL_SERIES"} > "$WORK/prepare.out"
    prc=$?
    set -e
    [ "$prc" = 0 ] || { [ "$prc" = 77 ] && exit 77; die_harness "prepare.sh failed (exit $prc)"; }
    CACHE_DIR="$(tail -n 1 "$WORK/prepare.out")"
fi
KERNEL="$CACHE_DIR/kernel"
BASE_INITRD="$CACHE_DIR/initramfs.cpio"
[ -f "$KERNEL" ] && [ -f "$BASE_INITRD" ] || die_harness "no kernel/initramfs.cpio in $CACHE_DIR"

# Per-run overlay cpio, appended to the base (concatenated cpio archives form one initramfs).
OV="$WORK/overlay"
mkdir -p "$OV"
install -m 0755 "$SCRIPT" "$OV/test.sh"
for spec in "${FILES[@]+"${FILES[@]}"}"; do
    src="${spec%%:*}" dst="${spec#*:}"
    [ "$src" != "$spec" ] && [ -n "$src" ] || die_usage "--file needs SRC:DEST (got '$spec')"
    [[ "$dst" == /* ]] || die_usage "--file DEST must be absolute (got '$dst')"
    [ -e "$src" ] || die_usage "--file source not found: $src"
    mkdir -p "$OV$(dirname "$dst")"
    cp -a "$src" "$OV$dst"
done
: > "$OV/test.env"
for kv in "${ENVS[@]+"${ENVS[@]}"}"; do
    name="${kv%%=*}" val="${kv#*=}"
    [[ "$kv" == *=* && "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die_usage "--env needs NAME=VALUE (got '$kv')"
    printf "export %s='%s'\n" "$name" "${val//\'/\'\\\'\'}" >> "$OV/test.env"
done
INITRD="$WORK/initrd.cpio"
cp "$BASE_INITRD" "$INITRD"
# The kernel parses cpio headers at 4-byte-aligned absolute offsets: pad the base to 512.
sz=$(stat -c %s "$INITRD"); pad=$(( (512 - sz % 512) % 512 ))
[ "$pad" = 0 ] || head -c "$pad" /dev/zero >> "$INITRD"
( cd "$OV" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) >> "$INITRD"

# ---------------------------------------------------------------------------------------------
# Boot.
# ---------------------------------------------------------------------------------------------
NETDEV="user,id=n0"
for h in "${HOSTFWDS[@]+"${HOSTFWDS[@]}"}"; do NETDEV+=",hostfwd=$h"; done
CMDLINE="console=ttyS0 quiet panic=-1 oops=panic mitigations=off i8042.noaux i8042.nokbd $APPEND"
LOG="${CONSOLE:-$WORK/console.log}"
mkdir -p "$(dirname "$LOG")"
: > "$LOG"
QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m "$MEM"
      -no-user-config -nodefaults -display none -no-reboot
      -serial stdio -monitor none
      -kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE"
      -netdev "$NETDEV" -device "$NIC_DEV,netdev=n0,romfile="
      -pidfile "$PIDFILE")
# A guest kernel that crashes before the guest script starts (no @@GUEST-START@@ yet) never met the target: under
# multi-threaded TCG a 6.12 kernel very rarely trips over its own boot-time code patching (an int3 Oops in
# sched_clock_cpu on the second vCPU, seen once in CI). Such a boot is retried once, loudly; a crash after the
# script started is never retried.
START=$(date +%s.%N)
DEADLINE=$(( $(date +%s) + TIMEOUT ))
TIMED_OUT=0
ATTEMPT=1
while :; do
    log "booting ($(basename "$(readlink -f "$KERNEL")"), smp=$SMP mem=${MEM}M nic=$NIC timeout=${TIMEOUT}s$([ "$ATTEMPT" -gt 1 ] && echo ", attempt $ATTEMPT"))"
    OFFSET=$(( $(stat -c %s "$LOG") + 1 ))
    # Second guard: timeout(1) kills QEMU a little after our own deadline.
    timeout --kill-after=5 "$((DEADLINE - $(date +%s) + 10))" "${QEMU[@]}" < /dev/null >> "$LOG" 2>&1 &
    TPID=$!
    tail -s 0.2 -c "+$OFFSET" -f --pid="$TPID" "$LOG" &
    TAILPID=$!
    while alive "$TPID"; do
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            TIMED_OUT=1
            log "TIMEOUT after ${TIMEOUT}s; killing QEMU"
            kill_qemu
            break
        fi
        sleep 0.2
    done
    set +e
    wait "$TPID"
    qrc=$?
    set -e
    wait "$TAILPID" 2>/dev/null || true
    if [ "$ATTEMPT" = 1 ] && [ "$TIMED_OUT" = 0 ] && ! grep -a -q '@@GUEST-START@@\|@@GUEST-EXIT@@' "$LOG" \
        && grep -a -q 'Kernel panic\|Oops' "$LOG"; then
        log "the guest kernel crashed while booting, before the guest script started (an emulation fault, not the target): booting once more"
        rm -f "$PIDFILE"
        ATTEMPT=2
        continue
    fi
    break
done
ELAPSED=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')

marker="$(grep -a -o '@@GUEST-EXIT@@ [0-9]\+' "$LOG" | tail -n 1 | awk '{print $2}')" || true
if [ -n "$marker" ]; then
    rc="$marker"
    log "guest exit code $rc (${ELAPSED}s)"
elif [ "$TIMED_OUT" = 1 ] || [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    rc=124
    log "guest timed out after ${ELAPSED}s (limit ${TIMEOUT}s)"
else
    rc=125
    log "no @@GUEST-EXIT@@ marker (QEMU exit $qrc after ${ELAPSED}s): guest crashed or panicked"
fi
exit "$rc"
