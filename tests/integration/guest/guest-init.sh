#!/bin/sh
# /init of the guest initramfs built by prepare.sh. NOT meant to run on the host.
#
# Mounts the pseudo filesystems, loads the NIC driver and nvme-tcp, configures
# eth0 as 10.0.2.15/24 (QEMU user networking; the host is 10.0.2.2), sources
# /test.env if present, runs `sh /test.sh`, prints "@@GUEST-EXIT@@ <code>" on
# the console and powers off. If this script dies, the kernel panics and QEMU
# exits (panic=-1 + -no-reboot); run-guest.sh then reports "marker missing".
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
modprobe configfs 2>/dev/null
mount -t configfs configfs /sys/kernel/config || echo "guest-init: WARNING: configfs mount failed"
hostname nvmet-guest

# Options from the kernel command line: guest.loglevel=N (console loglevel while
# /test.sh runs; default 7 so the nvme/nvmet KERN_INFO lines are visible, KERN_DEBUG not).
loglevel=7
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        guest.loglevel=*) loglevel="${arg#guest.loglevel=}" ;;
    esac
done

# Network. Both NIC drivers are in the initramfs; whichever device QEMU has binds.
ip link set lo up
modprobe -a virtio_pci virtio_net 2>/dev/null
modprobe e1000 2>/dev/null
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e /sys/class/net/eth0 ]; then
    ip addr add 10.0.2.15/24 dev eth0
    ip link set eth0 up
    ip route add default via 10.0.2.2
else
    echo "guest-init: WARNING: no eth0 (NIC driver did not bind)"
fi

modprobe nvme-tcp || echo "guest-init: WARNING: modprobe nvme-tcp failed"

echo "$loglevel" > /proc/sys/kernel/printk

cd /
if [ -f /test.env ]; then
    . /test.env
fi
if [ -f /test.sh ]; then
    echo "@@GUEST-START@@"
    sh /test.sh
    rc=$?
else
    echo "guest-init: ERROR: /test.sh missing from the initramfs"
    rc=126
fi
sync
# Leading newline: kernel messages may have left a partial line on the console.
printf '\n@@GUEST-EXIT@@ %s\n' "$rc"
poweroff -f
sleep 10
