#!/usr/bin/env bash
# Builds Release, starts the target pinned to CPU 0, drives it with the load generator pinned to CPU 1 over a
# matrix of workloads, and prints one table. Usage: bench/run.sh [SECONDS_PER_CELL] [WARMUP_SECONDS]
# Environment: PORT (4520), QUICK=1 (only the 1-connection cells), SINK=0 (skip the generator-ceiling cells).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
WARM=${2:-2}
PORT=${PORT:-4520}
SINKPORT=$((PORT + 1))
OUT=${OUT:-$(mktemp -d /tmp/nvme-bench.XXXXXX)}
TARGET_PID=""
SINK_PID=""

cleanup() {
  for p in $TARGET_PID $SINK_PID; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  for p in $TARGET_PID $SINK_PID; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PIN0="taskset -c 0"; PIN1="taskset -c 1"
if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then PIN0=""; PIN1=""; echo "warning: no taskset or fewer than 2 CPUs: not pinning" >&2; fi

echo "building (Release)..." >&2
dotnet build src/Target/Target.csproj -c Release -v q -nologo >&2
dotnet build bench/LoadGen/LoadGen.csproj -c Release -v q -nologo >&2
LG="dotnet bench/LoadGen/bin/Release/net10.0/nvme-tcp-loadgen.dll"

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}

$PIN0 dotnet src/Target/bin/Release/net10.0/nvme-tcp-target.dll --listen 127.0.0.1:$PORT --namespace memory:1G --api off \
  --log-level warning >"$OUT/target.log" 2>&1 &
TARGET_PID=$!
wait_port $PORT

# Fill the namespace once so reads hit allocated memory, not the store's unallocated (zero) pages.
echo "prefill: 1 GiB sequential 128 KiB writes" >&2
$PIN1 $LG --target 127.0.0.1:$PORT --rw write --bs 128k --qd 8 --warmup 0 --duration 2 >"$OUT/prefill.txt" || true

# Warm the JIT up before the first measured cell (tier-1 code for the read and write paths): the target runs
# on one core, so a background compile would otherwise eat into the first cells.
echo "warm-up: 3 s 4 KiB random reads, 3 s 4 KiB random writes" >&2
$PIN1 $LG --target 127.0.0.1:$PORT --rw randread --bs 4k --qd 32 --warmup 0 --duration 3 >/dev/null || true
$PIN1 $LG --target 127.0.0.1:$PORT --rw randwrite --bs 4k --qd 32 --warmup 0 --duration 3 >/dev/null || true

# A cell: workload bs qd conns digests(on|off) sqflow(on|off: off = the host disabled SQ flow control, so a read
# ends with C2HData SUCCESS and no response capsule, as `nvme connect --disable-sqflow`).
cells=()
for conns in 1 4; do
  [ "${QUICK:-0}" = 1 ] && [ $conns = 4 ] && continue
  for dg in off on; do
    cells+=("randread 4k 1 $conns $dg on" "randread 4k 32 $conns $dg on" "randwrite 4k 1 $conns $dg on" "randwrite 4k 32 $conns $dg on"
            "read 128k 8 $conns $dg on" "write 128k 8 $conns $dg on")
    [ $conns = 1 ] && cells+=("randread 4k 1 1 $dg off" "randread 4k 32 1 $dg off" "read 128k 8 1 $dg off")
  done
done

run_cell() { # rw bs qd conns digests sqflow kind port
  local rw=$1 bs=$2 qd=$3 conns=$4 dg=$5 sq=$6 kind=$7 port=$8
  local f="$OUT/$kind-$rw-$bs-qd$qd-c$conns-dg$dg-sq$sq.json"
  local extra=""; [ "$dg" = on ] && extra="--digests"; [ "$sq" = off ] && extra="$extra --disable-sqflow"
  $PIN1 $LG --target 127.0.0.1:$port --rw "$rw" --bs "$bs" --qd "$qd" --conns "$conns" $extra \
    --duration "$DUR" --warmup "$WARM" --label "$kind" --json "$f" >"${f%.json}.txt" 2>&1 || echo "cell $kind $rw $bs qd$qd c$conns dg$dg sq$sq failed: $(tail -2 "${f%.json}.txt")" >&2
  echo "  $kind $rw $bs qd$qd conns$conns digests-$dg sqflow-$sq: $(sed -n 2p "${f%.json}.txt")" >&2
}

for c in "${cells[@]}"; do run_cell $c target $PORT; done
kill -TERM $TARGET_PID; wait $TARGET_PID 2>/dev/null || true; TARGET_PID=""

if [ "${SINK:-1}" = 1 ]; then
  $PIN0 $LG sink --listen 127.0.0.1:$SINKPORT >"$OUT/sink.log" 2>&1 &
  SINK_PID=$!
  wait_port $SINKPORT
  for c in "randread 4k 32 1 off on" "randread 4k 32 4 off on" "write 128k 8 1 on on"; do run_cell $c sink $SINKPORT; done
fi

python3 - "$OUT" <<'PY'
import json, glob, sys, os
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    r = json.load(open(f)); rows.append(r)
order = {"randread": 0, "randwrite": 1, "read": 2, "write": 3}
rows.sort(key=lambda r: (r["label"] != "target", r["conns"], r["digests"], r.get("disableSqFlow", False), r["bs"], order.get(r["rw"], 9), r["qd"]))
hdr = f'{"against":8} {"workload":10} {"bs":>5} {"qd":>3} {"conns":>5} {"dgst":>4} {"sqfc":>4} {"IOPS":>9} {"MiB/s":>8} {"avg us":>7} {"p50":>7} {"p90":>7} {"p99":>7} {"p99.9":>8} {"max":>8} {"err":>4}'
print(hdr); print("-" * len(hdr))
for r in rows:
    l = r["latencyUs"]; bs = f'{r["bs"]//1024}k'
    print(f'{r["label"]:8} {r["rw"]:10} {bs:>5} {r["qd"]:>3} {r["conns"]:>5} {"on" if r["digests"] else "off":>4} {"off" if r.get("disableSqFlow") else "on":>4} {r["iops"]:>9.0f} {r["mibPerSec"]:>8.1f} '
          f'{l["avg"]:>7.1f} {l["p50"]:>7.1f} {l["p90"]:>7.1f} {l["p99"]:>7.1f} {l["p99.9"]:>8.1f} {l["max"]:>8.1f} {r["errors"]:>4}')
PY
echo "results: $OUT" >&2
