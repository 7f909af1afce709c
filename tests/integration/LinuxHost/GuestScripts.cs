namespace Integration.Tests.LinuxHost;

/// <summary>Shell building blocks for guest scripts (busybox sh inside the initramfs).</summary>
internal static class GuestScripts
{
    /// <summary>Helpers every script starts with: sections, device lookup.</summary>
    public const string Prelude = """
        sec() { _s=$1; shift; echo "@@BEGIN $_s@@"; "$@" 2>&1; _rc=$?; echo "@@END $_s rc=$_rc@@"; return 0; }
        # The first namespace block device of the (only) connected subsystem, e.g. /dev/nvme0n1.
        nsdev() { _n=${1:-1}; _k=0; while [ $_k -lt 100 ]; do _d=$(ls /sys/block 2>/dev/null | grep -E "^nvme[0-9]+n$_n\$" | head -n 1); [ -n "$_d" ] && { echo /dev/$_d; return 0; }; sleep 0.1; _k=$((_k+1)); done; echo "no namespace $_n block device" >&2; return 1; }
        ctrldev() { c=$(ls /sys/class/nvme 2>/dev/null | head -n 1); [ -n "$c" ] && echo /dev/$c; }
        nodevs() { _k=0; while [ $_k -lt 100 ]; do [ -z "$(ls /sys/class/nvme 2>/dev/null)" ] && return 0; sleep 0.1; _k=$((_k+1)); done; echo "controllers still present: $(ls /sys/class/nvme)"; return 1; }
        verify() { fio --name=verify --filename="$1" --rw=randwrite --bs="$2" --iodepth="$3" --size="$4" --offset="${5:-0}" --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 > /tmp/fio.out 2>&1; _rc=$?; grep -E "err=|IOPS=|verify|crc|error" /tmp/fio.out; return $_rc; }

        """;
}
