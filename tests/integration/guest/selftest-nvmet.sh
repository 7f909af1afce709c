#!/bin/sh
# selftest-nvmet.sh — GUEST script (run it with run-guest.sh, not on the host):
#
#   tests/integration/guest/run-guest.sh --script tests/integration/guest/selftest-nvmet.sh
#
# Proves the harness end to end against the guest kernel's own NVMe/TCP target (nvmet):
# configures nvmet through configfs on 127.0.0.1:4420 with two namespaces
#   nsid 1: /dev/ram0 (brd, 64 MiB)
#   nsid 2: a 32 MiB file in tmpfs (needs buffered_io=1: tmpfs has no O_DIRECT in 6.1)
# then, with the Linux initiator: nvme discover, connect, list, id-ctrl, id-ns, fio 4k randwrite
# verify=crc32c over 16 MiB, a dd/sha256 round trip on nsid 2, disconnect; a second connect
# with header+data digests (-g -G) and a short fio verify; finally dmesg.
set -eu

NQN=nqn.2024-01.io.nvmetcp:selftest
PORT=4420
CFG=/sys/kernel/config/nvmet

step() { echo; echo "=== $*"; }
fail() { echo "SELFTEST FAILED: $*"; dmesg | tail -n 40; exit 1; }
wait_for() {   # wait_for PATH [tenths]
    n=0
    while [ ! -e "$1" ]; do
        n=$((n + 1)); [ $n -le "${2:-100}" ] || return 1
        sleep 0.1
    done
}
ctrl_for_nqn() {
    for c in /sys/class/nvme/nvme*; do
        [ -e "$c/subsysnqn" ] || continue
        [ "$(cat "$c/subsysnqn")" = "$NQN" ] && { basename "$c"; return 0; }
    done
    return 1
}
ns_dev() {     # ns_dev NSID -> /dev/nvmeXnY (only one subsystem is connected in this test)
    for b in /sys/block/nvme*n*; do
        [ -e "$b/nsid" ] || continue
        [ "$(cat "$b/nsid")" = "$1" ] && [ -b "/dev/${b##*/}" ] && { echo "/dev/${b##*/}"; return 0; }
    done
    return 1
}

step "target setup (configfs)"
modprobe nvmet
modprobe nvmet-tcp
modprobe brd rd_nr=1 rd_size=65536
wait_for /dev/ram0 || fail "/dev/ram0 did not appear"
truncate -s 32M /tmp/ns2.img

mkdir "$CFG/subsystems/$NQN"
echo 1 > "$CFG/subsystems/$NQN/attr_allow_any_host"
mkdir "$CFG/subsystems/$NQN/namespaces/1"
printf /dev/ram0 > "$CFG/subsystems/$NQN/namespaces/1/device_path"
echo 1 > "$CFG/subsystems/$NQN/namespaces/1/enable"
mkdir "$CFG/subsystems/$NQN/namespaces/2"
printf /tmp/ns2.img > "$CFG/subsystems/$NQN/namespaces/2/device_path"
echo 1 > "$CFG/subsystems/$NQN/namespaces/2/buffered_io"
echo 1 > "$CFG/subsystems/$NQN/namespaces/2/enable"
mkdir "$CFG/ports/1"
echo tcp > "$CFG/ports/1/addr_trtype"
echo ipv4 > "$CFG/ports/1/addr_adrfam"
echo 127.0.0.1 > "$CFG/ports/1/addr_traddr"
echo "$PORT" > "$CFG/ports/1/addr_trsvcid"
ln -s "$CFG/subsystems/$NQN" "$CFG/ports/1/subsystems/$NQN"
echo "nvmet listening on 127.0.0.1:$PORT, subsystem $NQN"

step "nvme discover"
nvme discover -t tcp -a 127.0.0.1 -s "$PORT" | tee /tmp/discover.txt
grep -q "subnqn: *$NQN" /tmp/discover.txt || fail "subsystem not in the discovery log"

step "nvme connect"
nvme connect -t tcp -a 127.0.0.1 -s "$PORT" -n "$NQN"
n=0; until CTRL=$(ctrl_for_nqn); do n=$((n + 1)); [ $n -le 50 ] || fail "no controller for $NQN"; sleep 0.1; done
n=0; until DEV1=$(ns_dev 1) && DEV2=$(ns_dev 2) && [ -b "$DEV1" ] && [ -b "$DEV2" ]; do
    n=$((n + 1)); [ $n -le 100 ] || fail "namespaces of $CTRL did not appear"; sleep 0.1
done
echo "controller $CTRL, nsid 1 = $DEV1, nsid 2 = $DEV2"

step "nvme list"
nvme list

step "nvme id-ctrl /dev/$CTRL"
nvme id-ctrl "/dev/$CTRL" | tee /tmp/idctrl.txt | grep -E '^(vid|sn|mn|fr|mdts|cntlid|ver|sgls|ioccsz|iorcsz|subnqn|maxcmd|nn) '
grep -q "^subnqn *: *$NQN" /tmp/idctrl.txt || fail "id-ctrl subnqn mismatch"

step "nvme id-ns $DEV1"
nvme id-ns "$DEV1" | grep -E '^(nsze|ncap|nuse|nlbaf|flbas|lbaf +0) '
[ "$(blockdev --getsize64 "$DEV1")" = $((64 * 1024 * 1024)) ] || fail "nsid 1 size is not 64 MiB"
[ "$(blockdev --getsize64 "$DEV2")" = $((32 * 1024 * 1024)) ] || fail "nsid 2 size is not 32 MiB"

step "fio 4k randwrite verify=crc32c, 16 MiB on $DEV1"
fio --name=selftest --filename="$DEV1" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
    --size=16M --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 \
    --output-format=terse --terse-version=3 > /tmp/fio.txt || { cat /tmp/fio.txt; fail "fio failed"; }
awk -F';' '{printf "fio: write %s KiB/s (%s IOPS), read-verify %s KiB/s, errors %s\n", $48, $49, $7, $5}' /tmp/fio.txt

step "dd + sha256 round trip on $DEV2 (file-backed, buffered_io)"
dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 2>/dev/null
dd if=/tmp/pattern of="$DEV2" bs=1M oflag=direct 2>/dev/null
dd if="$DEV2" of=/tmp/readback bs=1M count=8 iflag=direct 2>/dev/null
[ "$(sha256sum < /tmp/pattern)" = "$(sha256sum < /tmp/readback)" ] || fail "nsid 2 readback mismatch"
[ "$(head -c 8388608 /tmp/ns2.img | sha256sum)" = "$(sha256sum < /tmp/pattern)" ] || fail "backing file content mismatch"
echo "sha256 ok"

step "nvme disconnect"
nvme disconnect -n "$NQN"
n=0; while ctrl_for_nqn >/dev/null; do n=$((n + 1)); [ $n -le 50 ] || fail "controller still present after disconnect"; sleep 0.1; done

step "connect with header+data digests (-g -G), short fio verify"
nvme connect -t tcp -a 127.0.0.1 -s "$PORT" -n "$NQN" -g -G
n=0; until CTRL=$(ctrl_for_nqn) && DEV1=$(ns_dev 1) && [ -b "$DEV1" ]; do
    n=$((n + 1)); [ $n -le 100 ] || fail "digest connect: no namespace"; sleep 0.1
done
fio --name=digest --filename="$DEV1" --ioengine=libaio --direct=1 --rw=randrw --bs=64k \
    --size=8M --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output-format=terse --terse-version=3 > /tmp/fio2.txt || { cat /tmp/fio2.txt; fail "fio (digests) failed"; }
echo "fio with digests ok"
lsmod | grep -q '^crc32c' || fail "digests requested but no crc32c module loaded"
echo "crc32c modules loaded: $(lsmod | awk '/^crc32c/ {print $1}' | tr '\n' ' ')"
nvme disconnect -n "$NQN"

step "dmesg"
dmesg | grep -Ei 'nvme|nvmet|crc32' || true
echo
echo "SELFTEST PASSED"
