#!/bin/bash
# Stops the daemons started by ceph-up.sh (by PID file) and removes the scratch dir.
D=${CEPH_DIR:-/tmp/cephtest}
pids=()
for f in "$D"/run/*.pid; do [ -e "$f" ] || continue; p=$(cat "$f"); kill "$p" 2>/dev/null && pids+=("$p"); done
for i in $(seq 1 100); do alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done; [ $alive = 0 ] && break; sleep 0.1; done
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { echo "pid $p still alive, SIGKILL"; kill -9 "$p"; }; done
rm -rf "$D"
