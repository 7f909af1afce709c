namespace Integration.Tests.LinuxHost;

/// <summary>Shell building blocks for guest scripts (busybox sh inside the initramfs).</summary>
internal static class GuestScripts
{
    /// <summary>Helpers every script starts with: sections, device lookup.</summary>
    public const string Prelude = """
        sec() { _s=$1; shift; echo "@@BEGIN $_s@@"; "$@" 2>&1; _rc=$?; echo "@@END $_s rc=$_rc@@"; return 0; }
        # The block device of namespace NSID $1 (default 1) of the connected subsystem, found by its sysfs nsid: the
        # kernel numbers nvmeXnY in the order it scans namespaces, not by NSID (6.12 scans them in parallel).
        nsdev() { _n=${1:-1}; _k=0; while [ $_k -lt 100 ]; do for _nsp in /sys/block/nvme*n*; do _b=${_nsp##*/}; case $_b in *c*) continue;; esac; [ "$(cat $_nsp/nsid 2>/dev/null)" = "$_n" ] && { echo /dev/$_b; return 0; }; done; sleep 0.1; _k=$((_k+1)); done; echo "no namespace $_n block device" >&2; return 1; }
        ctrldev() { c=$(ls /sys/class/nvme 2>/dev/null | head -n 1); [ -n "$c" ] && echo /dev/$c; }
        nodevs() { _k=0; while [ $_k -lt 100 ]; do [ -z "$(ls /sys/class/nvme 2>/dev/null)" ] && return 0; sleep 0.1; _k=$((_k+1)); done; echo "controllers still present: $(ls /sys/class/nvme)"; return 1; }
        verify() { fio --name=verify --filename="$1" --rw=randwrite --bs="$2" --iodepth="$3" --size="$4" --offset="${5:-0}" --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 > /tmp/fio.out 2>&1; _rc=$?; grep -E "err=|IOPS=|verify|crc|error" /tmp/fio.out; return $_rc; }

        """;

    /// <summary>
    /// <c>auth_try NAME ADDR PORT SUBNQN HOST_SECRET CTRL_SECRET [nvme connect options...]</c>: one NVMe in-band
    /// authentication attempt from the guest (needs the 6.12 kernel for a secret; an empty secret is left out of
    /// the command). It clears the kernel log, runs <c>nvme connect -t tcp -a ADDR -s PORT -n SUBNQN
    /// [--dhchap-secret=HOST_SECRET] [--dhchap-ctrl-secret=CTRL_SECRET] ...</c> and prints the sections
    /// NAME-connect (nvme-cli's output, rc = its exit code), on success NAME-io (a 4 KiB direct read of
    /// namespace 1) and NAME-disconnect, then NAME-ctrls (controllers left: none expected) and
    /// NAME-dmesg (the kernel log of the attempt: host "nvme nvmeN:" lines and, against the guest's own
    /// nvmet, its "nvmet:" lines). Read the result with <see cref="GuestAuthAttempt.From"/>. Needs
    /// <see cref="Prelude"/>.
    /// </summary>
    public const string AuthTry = """
        auth_try() {
            _an=$1; _aa=$2; _ap=$3; _anq=$4; _ahs=$5; _acs=$6; shift 6
            dmesg -c > /dev/null
            [ -n "$_ahs" ] && set -- "$@" "--dhchap-secret=$_ahs"
            [ -n "$_acs" ] && set -- "$@" "--dhchap-ctrl-secret=$_acs"
            echo "@@BEGIN $_an-connect@@"; nvme connect -t tcp -a "$_aa" -s "$_ap" -n "$_anq" "$@" 2>&1; _arc=$?; echo "@@END $_an-connect rc=$_arc@@"
            if [ $_arc = 0 ]; then
                _ad=$(nsdev 1) && sec $_an-io dd if=$_ad of=/dev/null bs=4k count=1 iflag=direct
                sec $_an-disconnect nvme disconnect -n "$_anq"
            fi
            nodevs > /dev/null
            sec $_an-ctrls ls /sys/class/nvme
            sleep 0.2
            sec $_an-dmesg dmesg -c
        }

        """;

    /// <summary>The guest command line of one <see cref="AuthTry"/> attempt (secrets may be null: not given; they
    /// are double-quoted, so a shell variable such as <c>$HK</c> works as well as a literal DHHC-1 key).
    /// Against our target: <c>AuthTryLine("bidi", "10.0.2.2", port, nqn, hostKey, ctrlKey)</c>.</summary>
    public static string AuthTryLine(string name, string address, object port, string subsystemNqn, string? hostSecret, string? ctrlSecret, string extraConnectOptions = "") =>
        $"auth_try {name} {address} {port} {subsystemNqn} \"{hostSecret ?? ""}\" \"{ctrlSecret ?? ""}\" {extraConnectOptions}\n";
}

/// <summary>What one <see cref="GuestScripts.AuthTry"/> attempt printed.</summary>
/// <param name="ConnectRc">nvme connect's exit code.</param>
/// <param name="ConnectOutput">What nvme connect printed (stdout and stderr).</param>
/// <param name="IoOk">A 4 KiB read of namespace 1 worked after the connect.</param>
/// <param name="ControllersLeft">Controllers in /sys/class/nvme after the attempt (and the disconnect).</param>
/// <param name="KernelLog">The guest kernel's log lines of the attempt.</param>
internal sealed record GuestAuthAttempt(string Name, int ConnectRc, string ConnectOutput, bool IoOk, string ControllersLeft, string[] KernelLog)
{
    /// <summary>The connect worked and the namespace was readable.</summary>
    public bool Connected => ConnectRc == 0 && IoOk;

    /// <summary>The connect failed and left no controller behind.</summary>
    public bool FailedCleanly => ConnectRc != 0 && ControllersLeft.Length == 0;

    /// <summary>Kernel log lines containing <paramref name="text"/>.</summary>
    public IEnumerable<string> Log(string text) => KernelLog.Where(l => l.Contains(text, StringComparison.Ordinal));

    public static GuestAuthAttempt From(Dictionary<string, (string Output, int Rc)> sections, string name)
    {
        if (!sections.TryGetValue(name + "-connect", out var connect) || !sections.TryGetValue(name + "-dmesg", out var dmesg))
            throw new InvalidOperationException($"auth attempt '{name}' did not run to its end in the guest (sections missing)");
        bool io = sections.TryGetValue(name + "-io", out var i) && i.Rc == 0 && i.Output.Contains("1+0 records in");
        var left = sections.TryGetValue(name + "-ctrls", out var c) ? c.Output.Trim() : "?";
        var log = dmesg.Output.Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToArray();
        return new GuestAuthAttempt(name, connect.Rc, connect.Output.Trim(), io, left, log);
    }

    public override string ToString() =>
        $"{Name}: nvme connect rc={ConnectRc} io={(IoOk ? "ok" : "no")} controllers-left='{ControllersLeft}'\n  output: {ConnectOutput.Replace("\n", "\n          ")}\n  kernel log:\n    {string.Join("\n    ", KernelLog)}";
}
