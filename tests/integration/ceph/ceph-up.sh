#!/bin/bash
# Minimal single-node Ceph (Pacific 16.2, Debian 12 packages) on loopback only.
# No systemd, no cephadm, no containers, nothing under /etc/ceph.
#   apt-get install --no-install-recommends ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev
# Usage:  [CEPH_DIR=/tmp/cephtest] [OBJECTSTORE=memstore|bluestore] [WITH_MGR=1|0] [AUTH=cephx|none] \
#         [MON_PORT_V2=3300] [MON_PORT_V1=6789] ceph-up.sh
# Afterwards:  export CEPH_CONF=$CEPH_DIR/ceph.conf ; ceph -s ; rbd ls
# (librados' rados_conf_read_file(cluster, NULL) also honours $CEPH_CONF.)
# Teardown:  ceph-down.sh  (kills the PIDs in $CEPH_DIR/run/*.pid, then rm -rf $CEPH_DIR)
set -euo pipefail

D=${CEPH_DIR:-/tmp/cephtest}
OBJECTSTORE=${OBJECTSTORE:-memstore}
WITH_MGR=${WITH_MGR:-1}
AUTH=${AUTH:-cephx}
P2=${MON_PORT_V2:-3300}
P1=${MON_PORT_V1:-6789}
T0=$(date +%s.%N)
ts() { printf '[%6.2fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; }

if [ -e "$D" ]; then echo "$D exists; tear it down first" >&2; exit 1; fi
mkdir -p "$D"/{run,log,crash,mon.a,osd.0,mgr.x}
CONF=$D/ceph.conf
export CEPH_CONF=$CONF
FSID=$(uuidgen)

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$P2,v1:127.0.0.1:$P1]
public_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = $AUTH
auth_service_required = $AUTH
auth_client_required = $AUTH
auth_allow_insecure_global_id_reclaim = false
run_dir = $D/run
crash_dir = $D/crash
admin_socket = $D/run/\$cluster-\$name.asok
log_file = $D/log/\$cluster-\$name.log
pid_file = $D/run/\$name.pid
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
[client]
keyring = $D/\$cluster.\$name.keyring
admin_socket = $D/run/\$cluster-\$name.\$pid.asok
log_file = $D/log/\$cluster-\$name.log
[mon]
mon_data = $D/mon.\$id
keyring = $D/mon.\$id/keyring
public_addr = 127.0.0.1
[mgr]
mgr_data = $D/mgr.\$id
keyring = $D/mgr.\$id/keyring
public_addr = 127.0.0.1
[osd]
osd_data = $D/osd.\$id
keyring = $D/osd.\$id/keyring
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
osd_objectstore = $OBJECTSTORE
# small-box tuning
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 2
# memstore: RAM-backed, contents lost when the OSD stops
memstore_device_bytes = 4294967296
# bluestore: sparse file inside osd dir
bluestore_block_path = $D/osd.\$id/block.file
bluestore_block_create = true
bluestore_block_size = 10737418240
bluestore_block_db_create = false
bluestore_block_wal_create = false
bluestore_fsck_on_mkfs = false
osd_memory_target = 1073741824
EOF
ts "wrote $CONF (fsid $FSID, objectstore $OBJECTSTORE, auth $AUTH)"

# --- keys + monmap ---------------------------------------------------------
ceph-authtool --create-keyring "$D/mon.keyring.tmp" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$D/ceph.client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$D/mon.keyring.tmp" --import-keyring "$D/ceph.client.admin.keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$P2,v1:127.0.0.1:$P1]" "$D/monmap" >/dev/null

# --- monitor ----------------------------------------------------------------
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring.tmp"
rm -f "$D/mon.keyring.tmp"
ceph-mon -i a                       # daemonizes, pid in $D/run/mon.a.pid
ts "mon.a started"
timeout 60 bash -c 'until ceph -s --connect-timeout 2 >/dev/null 2>&1; do sleep 0.5; done'
ts "mon.a answering"

# --- manager (optional; not needed for rbd I/O) ------------------------------
if [ "$WITH_MGR" = 1 ]; then
  ceph auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$D/mgr.x/keyring"
  ceph-mgr -i x
  ts "mgr.x started"
fi

# --- OSD ----------------------------------------------------------------------
OSD_UUID=$(uuidgen)
OSD_ID=$(ceph osd create "$OSD_UUID")
[ "$OSD_ID" = 0 ] || { echo "unexpected osd id $OSD_ID" >&2; exit 1; }
ceph-osd -i 0 --mkfs --mkkey --no-mon-config --osd-uuid "$OSD_UUID" > "$D/log/osd.0-mkfs.out" 2>&1 || { cat "$D/log/osd.0-mkfs.out"; exit 1; }
ceph auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' -i "$D/osd.0/keyring"
ceph-osd -i 0
ts "osd.0 started"
timeout 120 bash -c 'until ceph osd dump 2>/dev/null | grep -q "^osd.0 up"; do sleep 0.5; done'
ts "osd.0 up"

# --- rbd pool ------------------------------------------------------------------
ceph osd pool create rbd 8 8 >/dev/null 2>&1
ceph osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
rbd pool init rbd
ts "pool rbd created + initialised"
# wait for PGs (needs mgr for 'pg stat'; without mgr just probe with a write)
if [ "$WITH_MGR" = 1 ]; then
  timeout 120 bash -c 'until ceph pg stat 2>/dev/null | grep -qE "^[0-9]+ pgs: [0-9]+ active\+clean;"; do sleep 0.5; done' || ceph pg stat
fi
timeout 120 bash -c 'until rados -p rbd put __probe /etc/hostname 2>/dev/null; do sleep 0.5; done'
rados -p rbd rm __probe
ts "cluster usable (rados write ok)"
ceph -s
