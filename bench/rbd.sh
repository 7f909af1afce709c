#!/usr/bin/env bash
# RBD-backed namespaces against librbd alone, on the same cluster and image: `rbd bench` (librbd, no target) and the
# target with an rbd namespace driven by bench/LoadGen over NVMe/TCP, for 4k randread/randwrite QD32 and 128k
# sequential read/write QD8. Prints one table with the ratio target/librbd. Both without librbd's writeback cache:
# the target turns it off (a write is answered once the OSDs have it; see README "Namespaces on Ceph RBD"), and
# `rbd bench` with its default cache would answer writes from memory.
# Needs a running cluster: CEPH_CONF=... (e.g. tests/integration/ceph/ceph-up.sh brings one up on loopback).
# Usage: CEPH_CONF=/path/ceph.conf bench/rbd.sh [SECONDS_PER_CELL]   Environment: POOL (rbd), PORT (4530), SIZE (1G)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CEPH_CONF:?set CEPH_CONF to the ceph.conf of the cluster}"
export CEPH_CONF
DUR=${1:-10}
POOL=${POOL:-rbd}
PORT=${PORT:-4530}
SIZE=${SIZE:-1G}
IMAGE=bench-$$
TARGET_PID=""

cleanup() {
  if [ -n "$TARGET_PID" ] && kill -0 "$TARGET_PID" 2>/dev/null; then
    kill -TERM "$TARGET_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$TARGET_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TARGET_PID" 2>/dev/null || true
  fi
  rbd rm --no-progress "$POOL/$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building (Release)..." >&2
dotnet build src/Target/Target.csproj -c Release -v q -nologo >&2
dotnet build bench/LoadGen/LoadGen.csproj -c Release -v q -nologo >&2
LG="dotnet bench/LoadGen/bin/Release/net10.0/nvme-tcp-loadgen.dll"

rbd create --size "$SIZE" --image-feature layering "$POOL/$IMAGE"
# Every object written once, so reads read data (librbd answers reads of absent objects without any OSD).
rbd bench --io-type write --io-size 4M --io-threads 8 --io-total "$SIZE" --io-pattern seq "$POOL/$IMAGE" >/dev/null

# IOPS of `rbd bench` for TYPE SIZE THREADS PATTERN, run for about DUR seconds (its total is sized from a first pass).
bytes() { numfmt --from=iec "$(echo "$1" | tr a-z A-Z)"; }
# CPU accounting (clock ticks): the OSD's, and the whole machine's busy time, to say where the CPU per I/O goes.
OSD_PID=$(pgrep -x ceph-osd | head -1 || true)
HZ=$(getconf CLK_TCK)
osd_ticks() { if [ -n "$OSD_PID" ]; then awk '{ print $14 + $15 }' "/proc/$OSD_PID/stat"; else echo 0; fi; }
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# "IOPS OSD-us/IO OTHER-us/IO" from IOPS, seconds and the tick counts before and after
per_io() { awk -v r="$1" -v d="$2" -v o0="$3" -v o1="$4" -v b0="$5" -v b1="$6" -v hz="$HZ" \
  'BEGIN { n = r * d; if (n <= 0) { print r, "-", "-"; exit } printf "%d %.0f %.0f\n", r, (o1 - o0) / hz * 1e6 / n, ((b1 - b0) - (o1 - o0)) / hz * 1e6 / n }'; }

rbd_iops() {
  local type=$1 bs=$2 qd=$3 pattern=$4 total out
  total=$(( $(bytes "$bs") * 20000 ))
  out=$(rbd bench --rbd-cache=false --io-type "$type" --io-size "$(bytes "$bs")" --io-threads "$qd" --io-total "$total" --io-pattern "$pattern" "$POOL/$IMAGE" 2>&1 | tail -1)
  # "elapsed: 3   ops: 20000   ops/sec: 6422.71   bytes/sec: ..."
  local rate elapsed
  rate=$(echo "$out" | sed -n 's/.*ops\/sec: *\([0-9.]*\).*/\1/p')
  elapsed=$(echo "$out" | sed -n 's/.*elapsed: *\([0-9.]*\).*/\1/p')
  total=$(awk -v r="${rate:-1000}" -v d="$DUR" -v b="$(bytes "$bs")" 'BEGIN { printf "%d", r * d * b }')
  local o0 b0 t0 t1
  o0=$(osd_ticks); b0=$(busy_ticks); t0=$(date +%s.%N)
  out=$(rbd bench --rbd-cache=false --io-type "$type" --io-size "$(bytes "$bs")" --io-threads "$qd" --io-total "$total" --io-pattern "$pattern" "$POOL/$IMAGE" 2>&1 | tail -1)
  t1=$(date +%s.%N)
  rate=$(echo "$out" | sed -n 's/.*ops\/sec: *\([0-9.]*\).*/\1/p')
  per_io "$(printf '%.0f' "${rate:-0}")" "$(echo "$t1 - $t0" | bc)" "$o0" "$(osd_ticks)" "$b0" "$(busy_ticks)"
}

dotnet src/Target/bin/Release/net10.0/nvme-tcp-target.dll --listen "127.0.0.1:$PORT" --namespace "rbd:$POOL/$IMAGE" \
  --api off --probes off --log-level warning &
TARGET_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

target_iops() {
  local rw=$1 bs=$2 qd=$3 json o0 b0
  json=$(mktemp)
  # the generator's own warm-up is not measured; the CPU window is the measured part only (started after it)
  $LG --target "127.0.0.1:$PORT" --rw "$rw" --bs "$bs" --qd "$qd" --duration "$DUR" --warmup 2 --size "$SIZE" --json "$json" >/dev/null &
  local lg=$!
  sleep 2.2; o0=$(osd_ticks); b0=$(busy_ticks)
  sleep "$(echo "$DUR - 0.4" | bc)"
  local o1 b1; o1=$(osd_ticks); b1=$(busy_ticks)
  wait $lg
  per_io "$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["iops"]))' "$json")" "$(echo "$DUR - 0.4" | bc)" "$o0" "$o1" "$b0" "$b1"
  rm -f "$json"
}

echo "IOPS, and CPU microseconds per I/O: the OSD's, and everything else's (librbd, and for the target: the target and the generator)"
printf '%-20s %10s %8s %8s   %10s %8s %8s  %6s\n' cell "rbd bench" osd-us rest-us target osd-us rest-us ratio
for cell in "randread 4k 32 rand read" "randwrite 4k 32 rand write" "read 128k 8 seq read" "write 128k 8 seq write"; do
  set -- $cell
  read -r lib lo lr <<< "$(rbd_iops "$5" "$2" "$3" "$4")"
  read -r ours oo orr <<< "$(target_iops "$1" "$2" "$3")"
  printf '%-20s %10s %8s %8s   %10s %8s %8s  %6s\n' "$1 $2 QD$3" "$lib" "$lo" "$lr" "$ours" "$oo" "$orr" \
    "$(awk -v a="$ours" -v b="$lib" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
