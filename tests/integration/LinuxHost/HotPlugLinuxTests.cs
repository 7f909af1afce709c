using System.Diagnostics;
using System.Text.RegularExpressions;
using Nvme.Core.Model;
using Nvme.Core.Storage;
using Target;
using Target.Configuration;
using Xunit.Abstractions;
using Xunit.Sdk;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// Namespace hot-add, hot-remove and resize against the real Linux host (6.1; the tests over
/// <see cref="GuestKernels.Both"/> on 6.12 too, <see cref="GuestKernel"/>): the kernel must rescan on the
/// Namespace Attribute Changed event and create, delete or resize block devices live, while fio verifies
/// data on another namespace. The guest prints "@@MARK name@@" when it is ready for the next change; the test
/// makes the change through <see cref="TargetHost.Manager"/>; the guest waits for its effect by polling sysfs
/// (bounded loops). Each test is one guest boot.
/// </summary>
public sealed partial class HotPlugLinuxTests(ITestOutputHelper output)
{
    internal static readonly TimeSpan GuestTimeout = TimeSpan.FromMinutes(6);
    /// <summary>How long the test waits for the guest's next mark; longer than any bounded wait in the guest,
    /// so a guest-side failure (which prints dmesg) is what the assertion shows.</summary>
    internal static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(120);
    private const string Nqn = LinuxTarget.Nqn;
    private const string SecondHostNqn = "nqn.2014-08.org.nvmexpress:uuid:2c9e4b7a-5d1f-4a3b-8e6c-9f0a1b2c3d4e";
    private const string SecondHostId = "2c9e4b7a-5d1f-4a3b-8e6c-9f0a1b2c3d4e";

    private void Log(string line) => output.WriteLine(line);

    /// <summary>Guest helpers for hot-plug scripts (busybox ash).</summary>
    internal const string Helpers = """
        # "@@MARK name@@" for the test (which then makes the change); "seen name" when the guest saw its effect.
        # Both also go to the kernel log, so they share its clock with the kernel's own nvme lines.
        mark() { echo "<6>hotplug: mark $1" > /dev/kmsg; printf '\n@@MARK %s@@\n' "$1"; }
        seen() { echo "<6>hotplug: seen $1" > /dev/kmsg; }
        # the block device of NSID $1 (the multipath head, or the plain namespace disk), if there is one
        nsid_dev() { for _b in /sys/block/nvme*n*; do case ${_b##*/} in *c*) continue;; esac; [ -r $_b/nsid ] || continue; read _i < $_b/nsid; [ "$_i" = "$1" ] && [ -b /dev/${_b##*/} ] && { echo /dev/${_b##*/}; return 0; }; done; return 1; }
        # runs "$2..." every 50 ms until it succeeds, at most $1 times; fails if it never did
        poll() { _pn=$1; shift; _pk=0; while [ $_pk -lt $_pn ]; do "$@" && return 0; sleep 0.05; _pk=$((_pk+1)); done; return 1; }
        # bounded polls (every 50 ms, at most $2 polls, default 600 = 30 s)
        wait_dev() { _k=0; while [ $_k -lt ${2:-600} ]; do nsid_dev $1 && return 0; sleep 0.05; _k=$((_k+1)); done; echo "NSID $1: no block device" >&2; return 1; }
        wait_gone() { _k=0; while [ $_k -lt ${2:-600} ]; do nsid_dev $1 >/dev/null || return 0; sleep 0.05; _k=$((_k+1)); done; echo "NSID $1: block device still there" >&2; return 1; }
        wait_size() { _k=0; while [ $_k -lt ${3:-600} ]; do [ "$(blockdev --getsize64 $1)" = "$2" ] && return 0; sleep 0.05; _k=$((_k+1)); done; echo "$1: size $(blockdev --getsize64 $1), expected $2" >&2; return 1; }
        # controller $1 (nvme0, nvme1, ...) has a namespace disk (path or plain) with NSID $2
        ctrl_has() { for _d in /sys/class/nvme/$1/nvme*n*; do [ -r $_d/nsid ] || continue; read _i < $_d/nsid; [ "$_i" = "$2" ] && return 0; done; return 1; }
        wait_ctrl_has() { _k=0; while [ $_k -lt 600 ]; do ctrl_has $1 $2 && return 0; sleep 0.05; _k=$((_k+1)); done; echo "$1 never showed NSID $2" >&2; return 1; }
        wait_ctrl_lacks() { _k=0; while [ $_k -lt 600 ]; do ctrl_has $1 $2 || return 0; sleep 0.05; _k=$((_k+1)); done; echo "$1 still shows NSID $2" >&2; return 1; }
        # writes completed on NSID $1, summed over its disks (the multipath head counts none: its paths do)
        ns_writes() { _n=0; for _d in /sys/block/nvme*n* /sys/class/nvme/*/nvme*n*; do [ -r $_d/nsid ] || continue; read _i < $_d/nsid; [ "$_i" = "$1" ] || continue; read _a _b _c _d _w _r < $_d/stat; _n=$((_n + _w)); done; echo $_n; }
        # until NSID $1 completed at least $2 writes (fio is really running)
        wait_writes() { _k=0; while [ $_k -lt 600 ]; do [ "$(ns_writes $1)" -ge "$2" ] && return 0; sleep 0.05; _k=$((_k+1)); done; echo "NSID $1: no writes completed" >&2; return 1; }
        wait_exit() { _k=0; while kill -0 $1 2>/dev/null; do [ $_k -ge 600 ] && return 1; sleep 0.05; _k=$((_k+1)); done; return 0; }
        # on failure: the block devices left and the stacks of blocked tasks (sysrq w: a namespace scan stuck in the
        # kernel shows up there) go into the kernel log, printed with it
        fail() { echo "@@FAIL $*@@"; echo "@@BEGIN state-at-failure@@"; ls /sys/block; for _b in /sys/block/nvme*n*; do [ -r $_b/nsid ] && echo "${_b##*/} nsid $(cat $_b/nsid) size $(cat $_b/size)"; done; ps; echo "@@END state-at-failure rc=0@@"; echo w > /proc/sysrq-trigger 2>/dev/null; echo "@@BEGIN dmesg-at-failure@@"; dmesg; echo "@@END dmesg-at-failure rc=0@@"; exit 1; }
        # 4 MiB of random data written, read back and compared (direct I/O), at 64 KiB block $2 (default 0)
        ddcmp() { _o=${2:-0}; dd if=/dev/urandom of=/tmp/a bs=64k count=64 2>/dev/null && dd if=/tmp/a of=$1 bs=64k seek=$_o count=64 oflag=direct 2>/dev/null && dd if=$1 of=/tmp/b bs=64k skip=$_o count=64 iflag=direct 2>/dev/null && cmp /tmp/a /tmp/b && echo identical; }
        # fio verifying namespace $1 in the background until /tmp/stop-bg exists (the trigger file ends it cleanly)
        bg_fio() { rm -f /tmp/stop-bg; fio --name=bg --filename=$1 --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --verify_backlog=512 --size=32M --time_based --runtime=300 --trigger-file=/tmp/stop-bg --trigger=true --eta=never --output=/tmp/bg.out >/dev/null 2>&1 & BG=$!; }
        # stops the background fio; section bg-fio holds its report and exit code; still-running is checked first
        bg_stop() { kill -0 $BG 2>/dev/null && echo "@@BG-FIO-WAS-RUNNING@@"; touch /tmp/stop-bg; wait $BG; _rc=$?; echo "@@BEGIN bg-fio@@"; cat /tmp/bg.out; echo "@@END bg-fio rc=$_rc@@"; }

        """;

    internal static string Script(int port, string body) =>
        GuestScripts.Prelude + Helpers + $"T=10.0.2.2; P={port}; N={Nqn}\n" + body;

    private static NamespaceConfig Memory(uint nsid, string size) => new() { Nsid = nsid, Backend = "memory", Size = size };

    // ------------------------------------------------------------------ 1. add / remove / resize under fio

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task HotAdd_Remove_Resize_WhileFioVerifiesNs1(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        var m = host.Manager;
        var body = """
            sec connect nvme connect -t tcp -a $T -s $P -n $N
            D1=$(wait_dev 1) || fail "no block device for NSID 1"
            bg_fio $D1
            wait_writes 1 200 || fail "background fio did not start"
            mark add-ns2
            D2=$(wait_dev 2) || fail "NSID 2 never appeared after the hot-add"
            seen add-ns2
            sec ns2-size blockdev --getsize64 $D2
            sec ns2-dd ddcmp $D2
            sec ns2-fio verify $D2 64k 8 8M
            mark remove-ns2
            wait_gone 2 || fail "NSID 2 block device still there after the hot-remove"
            seen remove-ns2
            sec ns1-size-before blockdev --getsize64 $D1
            mark resize-ns1
            wait_size $D1 201326592 || fail "NSID 1 did not grow to 192 MiB"
            seen resize-ns1
            sec ns1-size-after blockdev --getsize64 $D1
            sec ns1-tail ddcmp $D1 2880
            bg_stop
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);

        await MarkAsync(vm, "add-ns2");
        await StepAsync(vm, "hot-add NSID 2", () => m.AddNamespaceAsync(Nqn, Memory(2, "64M")));
        await MarkAsync(vm, "remove-ns2");
        await StepAsync(vm, "hot-remove NSID 2", () => m.RemoveNamespaceAsync(Nqn, 2));
        await MarkAsync(vm, "resize-ns1");
        await StepAsync(vm, "grow NSID 1 to 192M", () => m.ResizeNamespaceAsync(Nqn, 1, "192M", force: false));

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        Check(Section(s, "ns2-size", vm).Output.Trim() == (64L << 20).ToString(), "hot-added NSID 2 has the wrong size in the guest", vm);
        Check(Section(s, "ns2-dd", vm).Output.Contains("identical"), "dd round trip on the hot-added namespace failed", vm);
        Check(Section(s, "ns2-fio", vm) is { Rc: 0 } f2 && f2.Output.Contains("err= 0"), "fio verify on the hot-added namespace failed", vm);
        Check(Section(s, "ns1-size-before", vm).Output.Trim() == (128L << 20).ToString(), "NSID 1 was not 128 MiB before the resize", vm);
        Check(Section(s, "ns1-size-after", vm).Output.Trim() == (192L << 20).ToString(), "NSID 1 is not 192 MiB after the resize", vm);
        Check(Section(s, "ns1-tail", vm).Output.Contains("identical"), "dd round trip in the grown part of NSID 1 (at 180 MiB) failed", vm);
        CheckBackgroundFio(s, vm);
        var dmesg = Section(s, "dmesg", vm).Output;
        Check(Regex.IsMatch(dmesg, @"capacity change from 262144 to 393216"), "host kernel log does not show the capacity change of NSID 1", vm);
        CheckNoIoErrors(dmesg, vm);
        Check(host.Target.FindSubsystem(Nqn)!.GetNamespace(1)!.Counters.Errors == 0, "the target counted errors on NSID 1", vm);
        var add = Timing(dmesg, "add-ns2", vm);
        Log($"NSID 2 hot-add: block device usable {add.MarkToSeen} ms after the guest asked for it, {add.EventToSeen} ms after the host got the event " +
            $"(kernel log \"rescanning namespaces\"; mark to event {add.MarkToEvent} ms = console round trip to the test + add + AER)");
        var remove = Timing(dmesg, "remove-ns2", vm);
        Log($"NSID 2 hot-remove: device gone {remove.MarkToSeen} ms after the mark, {remove.EventToSeen} ms after the event");
        var grow = Timing(dmesg, "resize-ns1", vm);
        Log($"NSID 1 grow 128M -> 192M under fio: new size visible {grow.MarkToSeen} ms after the mark, {grow.EventToSeen} ms after the event");
        Log("background fio: " + string.Join(" | ", Section(s, "bg-fio", vm).Output.Split('\n').Where(l => l.Contains("IOPS=")).Select(l => l.Trim())));
    }

    // ------------------------------------------------------------------ 2. add/remove cycles under fio

    private const int StressCycles = 50;

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task Stress_50AddRemoveCycles_WhileFioVerifiesNs1(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        var m = host.Manager;
        var sub = host.Target.FindSubsystem(Nqn)!;
        var body = $$"""
            CYCLES={{StressCycles}}
            sec connect nvme connect -t tcp -a $T -s $P -n $N
            D1=$(wait_dev 1) || fail "no block device for NSID 1"
            bg_fio $D1
            wait_writes 1 200 || fail "background fio did not start"
            i=1
            while [ $i -le $CYCLES ]; do
                mark add-$i
                D2=$(wait_dev 2) || fail "cycle $i: NSID 2 never appeared"
                seen add-$i
                dd if=$D2 of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null || fail "cycle $i: cannot read $D2"
                mark remove-$i
                wait_gone 2 || fail "cycle $i: NSID 2 still there"
                seen remove-$i
                echo "@@CYCLE $i dev=$D2@@"
                i=$((i+1))
            done
            mark cycles-done
            bg_stop
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);
        var created = new List<Namespace>();
        var clock = new Stopwatch();
        for (int i = 1; i <= StressCycles; i++)
        {
            await MarkAsync(vm, $"add-{i}");
            if (i == 1) clock.Start();
            await StepAsync(vm, $"cycle {i}: add NSID 2", () => m.AddNamespaceAsync(Nqn, Memory(2, "32M")));
            created.Add(sub.GetNamespace(2)!);
            await MarkAsync(vm, $"remove-{i}");
            await StepAsync(vm, $"cycle {i}: remove NSID 2", () => m.RemoveNamespaceAsync(Nqn, 2));
        }
        await MarkAsync(vm, "cycles-done");
        var cyclesTook = clock.Elapsed;

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        CheckBackgroundFio(s, vm);
        var dmesg = Section(s, "dmesg", vm).Output;
        var cycles = Enumerable.Range(1, StressCycles).Select(i => (Add: Timing(dmesg, $"add-{i}", vm), Remove: Timing(dmesg, $"remove-{i}", vm))).ToList();
        CheckNoIoErrors(dmesg, vm);
        Check(RescanRegex().Matches(dmesg).Count >= StressCycles, "the host logged fewer rescans than there were add/remove cycles", vm);

        // No leftover state for NSID 2 on the target.
        Check(sub.GetNamespace(2) is null, "NSID 2 still attached", vm);
        Check(m.ListNamespaces(Nqn).Select(n => n.Nsid).SequenceEqual([1u]), "the manager still lists NSID 2", vm);
        Check(!host.Target.FindSubsystem(Nqn)!.Namespaces.Any(n => n.Nsid != 1), "the subsystem holds more than NSID 1", vm);
        Check(created.Count == StressCycles && created.Distinct().Count() == StressCycles, "each add should have created a new namespace", vm);
        foreach (var ns in created)
            Check(ns.InFlight == 0 && !ns.IsAdmitting && ((MemoryBlockStore)ns.Store).AllocatedBytes == 0,
                $"a removed NSID 2 still holds I/O ({ns.InFlight}) or memory ({((MemoryBlockStore)ns.Store).AllocatedBytes} bytes)", vm);
        Check(sub.GetNamespace(1)!.Counters.Errors == 0, "the target counted errors on NSID 1", vm);
        await Poll.UntilAsync(() => !host.Target.Controllers.Any(), TimeSpan.FromSeconds(10));
        Check(!host.Target.Controllers.Any(), "controllers left after the guest disconnected", vm);

        double guestSeconds = (KernelMs(dmesg, "mark cycles-done", vm) - KernelMs(dmesg, "mark add-1", vm)) / 1000.0;
        Log($"{StressCycles} add/remove cycles in {guestSeconds:F1} s (guest kernel clock), {cyclesTook.TotalSeconds:F1} s seen by the test; " +
            $"NSID 2 usable after the event: median {Median(cycles.Select(c => c.Add.EventToSeen))} ms, max {cycles.Max(c => c.Add.EventToSeen)} ms " +
            $"(after the mark: median {Median(cycles.Select(c => c.Add.MarkToSeen))} ms); " +
            $"gone after the event: median {Median(cycles.Select(c => c.Remove.EventToSeen))} ms, max {cycles.Max(c => c.Remove.EventToSeen)} ms");
        Log("NSID 2 block devices over the cycles: " + string.Join(", ", Regex.Matches(vm.Console, @"@@CYCLE \d+ dev=/dev/(\S+)@@").GroupBy(x => x.Groups[1].Value).Select(g => $"{g.Key} x{g.Count()}")));
        Log("background fio: " + string.Join(" | ", Section(s, "bg-fio", vm).Output.Split('\n').Where(l => l.Contains("IOPS=")).Select(l => l.Trim())));
    }

    // ------------------------------------------------------------------ 3. remove the namespace fio uses

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task RemoveNamespaceUnderFio_FioFails_TargetHealthy_ReAddBringsItBack(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(configure: c => c.Namespaces.Add(Memory(2, "64M"))), logs);
        var m = host.Manager;
        var body = """
            sec connect nvme connect -t tcp -a $T -s $P -n $N
            D1=$(wait_dev 1) || fail "no block device for NSID 1"
            D2=$(wait_dev 2) || fail "no block device for NSID 2"
            echo "@@DEVS d1=${D1#/dev/} d2=${D2#/dev/}@@"
            bg_fio $D1
            fio --name=victim --filename=$D2 --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_backlog=512 --size=32M --time_based --runtime=300 --eta=never --output=/tmp/victim.out >/dev/null 2>&1 &
            V=$!
            wait_writes 1 200 || fail "background fio on NSID 1 did not start"
            wait_writes 2 200 || fail "fio on NSID 2 did not start"
            mark remove-ns2
            wait_exit $V || fail "fio on the removed namespace did not end"
            wait $V; vrc=$?
            seen victim-ended
            echo "@@BEGIN victim@@"; cat /tmp/victim.out; echo "@@END victim rc=$vrc@@"
            wait_gone 2 || fail "NSID 2 block device still there after the remove"
            seen remove-ns2
            sec ns1-io ddcmp $D1 1000
            mark readd-ns2
            D2=$(wait_dev 2) || fail "NSID 2 did not come back"
            seen readd-ns2
            sec ns2-size blockdev --getsize64 $D2
            sec ns2-dd ddcmp $D2
            sec ns2-fio verify $D2 64k 8 8M
            bg_stop
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);
        await MarkAsync(vm, "remove-ns2");
        var sub = host.Target.FindSubsystem(Nqn)!;
        var victim = sub.GetNamespace(2)!;
        await StepAsync(vm, "remove NSID 2 under fio", () => m.RemoveNamespaceAsync(Nqn, 2));
        Check(victim.InFlight == 0 && ((MemoryBlockStore)victim.Store).AllocatedBytes == 0, "the removed namespace still holds I/O or memory", vm);
        await MarkAsync(vm, "readd-ns2");
        // The controller survived the remove: the host never had to reconnect.
        Check(host.Target.Controllers.Count(c => !c.IsDiscovery) == 1, "the guest's controller did not survive the remove", vm);
        await StepAsync(vm, "re-add NSID 2", () => m.AddNamespaceAsync(Nqn, Memory(2, "48M")));

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        var v = Section(s, "victim", vm);
        Check(v.Rc != 0 && Regex.IsMatch(v.Output, @"err=\s*[1-9]"), "fio on the removed namespace should have failed with an I/O error", vm);
        CheckBackgroundFio(s, vm);
        Check(Section(s, "ns1-io", vm).Output.Contains("identical"), "NSID 1 I/O after the remove failed", vm);
        Check(Section(s, "ns2-size", vm).Output.Trim() == (48L << 20).ToString(), "re-added NSID 2 does not have its new size (48 MiB)", vm);
        Check(Section(s, "ns2-dd", vm).Output.Contains("identical"), "dd round trip on the re-added namespace failed", vm);
        Check(Section(s, "ns2-fio", vm) is { Rc: 0 } f && f.Output.Contains("err= 0"), "fio verify on the re-added namespace failed", vm);
        var dmesg = Section(s, "dmesg", vm).Output;
        // Errors are expected for NSID 2's devices (head and path) and nowhere else.
        var devs = Regex.Match(vm.Console, @"@@DEVS d1=(nvme(\d+)n(\d+)) d2=(\S+)@@");
        Check(devs.Success, "guest did not name its devices", vm);
        var ns1Path = new Regex($@"\b{devs.Groups[1].Value}\b|\bnvme{devs.Groups[2].Value}c\d+n{devs.Groups[3].Value}\b");
        var errorLines = dmesg.Split('\n').Where(l => l.Contains("nvme") && (l.Contains("I/O") || l.Contains("error") || l.Contains("path"))).ToList();
        Log($"host kernel lines about errors ({errorLines.Count}): " + string.Join(" | ", errorLines.Take(8).Select(l => l.Trim())));
        CheckNoIoErrors(dmesg, vm, allowed: l => !ns1Path.IsMatch(l) && (l.Contains("I/O") || l.Contains("error") || l.Contains("Error") || l.Contains("Invalid")));
        Check(sub.GetNamespace(1)!.Counters.Errors == 0, "the target counted errors on NSID 1", vm);
        Log($"fio on NSID 2 ({devs.Groups[4].Value}) ended {KernelMs(dmesg, "seen victim-ended", vm) - KernelMs(dmesg, "mark remove-ns2", vm)} ms after the remove mark; " +
            $"device gone {Timing(dmesg, "remove-ns2", vm).EventToSeen} ms after the event; re-added NSID 2 usable {Timing(dmesg, "readd-ns2", vm).EventToSeen} ms after the event");
    }

    // ------------------------------------------------------------------ 4. two controllers of one host

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task TwoControllers_DifferentHostNqns_BothSeeAddAndRemove(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        var m = host.Manager;
        var body = $$"""
            sec connect-a nvme connect -t tcp -a $T -s $P -n $N
            # nvme-cli 2.3 answers "already connected" for a second connect to the same address and subsystem,
            # even with another host NQN and --duplicate-connect; the kernel takes it (its match includes the host NQN).
            sec connect-b sh -c "echo transport=tcp,traddr=$T,trsvcid=$P,nqn=$N,hostnqn={{SecondHostNqn}},hostid={{SecondHostId}} > /dev/nvme-fabrics"
            D1=$(wait_dev 1) || fail "no block device for NSID 1"
            CTRLS=$(ls /sys/class/nvme)
            sec ctrls echo $CTRLS
            [ $(echo $CTRLS | wc -w) -eq 2 ] || fail "expected two controllers, have: $CTRLS"
            for c in $CTRLS; do wait_ctrl_has $c 1 || fail "$c has no NSID 1"; done
            mark add-ns2
            for c in $CTRLS; do wait_ctrl_has $c 2 || fail "$c never showed NSID 2"; seen add-$c; echo "@@SEEN $c@@"; done
            # each controller's own view from the target (JSON: the plain list-ns output of nvme-cli 2.3 comes out
            # empty for a controller device once a second host NQN is connected)
            for c in $CTRLS; do sec list-ns-$c nvme list-ns /dev/$c -o json; sec sysfs-$c ls /sys/class/nvme/$c; done
            D2=$(wait_dev 2) || fail "NSID 2 has no block device"
            sec ns2-dd ddcmp $D2
            mark remove-ns2
            for c in $CTRLS; do wait_ctrl_lacks $c 2 || fail "$c still shows NSID 2"; done
            wait_gone 2 || fail "NSID 2 block device still there"
            for c in $CTRLS; do sec after-$c ls /sys/class/nvme/$c; done
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);
        await MarkAsync(vm, "add-ns2");
        var ctrls = m.ListControllers().Where(c => c.Subsystem == Nqn).ToList();
        Check(ctrls.Count == 2 && ctrls.Select(c => c.HostNqn).ToHashSet().SetEquals([GuestVm.HostNqn, SecondHostNqn]),
            $"expected two controllers, one per host NQN; the target has {string.Join(", ", ctrls.Select(c => $"{c.Cntlid}:{c.HostNqn}"))}", vm);
        await StepAsync(vm, "add NSID 2", () => m.AddNamespaceAsync(Nqn, Memory(2, "32M")));
        await MarkAsync(vm, "remove-ns2");
        await StepAsync(vm, "remove NSID 2", () => m.RemoveNamespaceAsync(Nqn, 2));

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        var names = Section(s, "ctrls", vm).Output.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Check(names.Length == 2, $"the guest should have two controllers, has: {string.Join(" ", names)}", vm);
        foreach (var c in names)
        {
            var list = Section(s, $"list-ns-{c}", vm).Output;
            Check(Regex.IsMatch(list, @"""nsid""\s*:\s*1\b") && Regex.IsMatch(list, @"""nsid""\s*:\s*2\b"), $"nvme list-ns on {c} does not show NSIDs 1 and 2", vm);
            Check(Regex.IsMatch(Section(s, $"sysfs-{c}", vm).Output, @"\bnvme\d+(c\d+)?n2\b"), $"{c} has no namespace disk for NSID 2 in sysfs", vm);
            Check(!Regex.IsMatch(Section(s, $"after-{c}", vm).Output, @"\bnvme\d+(c\d+)?n2\b"), $"{c} still has a namespace disk for NSID 2 after the remove", vm);
            Check(vm.Console.Contains($"@@SEEN {c}@@"), $"{c} never saw NSID 2", vm);
        }
        Check(Section(s, "ns2-dd", vm).Output.Contains("identical"), "dd round trip on NSID 2 failed", vm);
        var dmesg = Section(s, "dmesg", vm).Output;
        CheckNoIoErrors(dmesg, vm);
        var rescans = RescanRegex().Matches(dmesg).Select(x => x.Value).ToList();
        foreach (var c in names)
            Check(rescans.Count(r => r.Contains($"nvme {c}:")) >= 2, $"{c} did not rescan for both the add and the remove", vm);
        Log(string.Join("; ", names.Select(c => $"{c} had NSID 2 {KernelMs(dmesg, $"seen add-{c}", vm) - KernelMs(dmesg, "mark add-ns2", vm)} ms after the mark")));
        Log("namespace disks per controller after the add: " + string.Join("; ", names.Select(c =>
            c + ": " + string.Join(" ", Regex.Matches(Section(s, $"sysfs-{c}", vm).Output, @"\bnvme\d+(c\d+)?n\d+\b").Select(x => x.Value)))));
    }

    // ------------------------------------------------------------------ helpers

    internal static async Task MarkAsync(GuestVm vm, string name)
    {
        try { await vm.WaitForLineAsync($"^@@MARK {Regex.Escape(name)}@@", StepTimeout); }
        catch (TimeoutException e) { throw new XunitException($"guest never reached mark '{name}': {e.Message}"); }
    }

    internal static async Task StepAsync(GuestVm vm, string what, Func<Task> step)
    {
        try { await step(); }
        catch (Exception e) when (e is not XunitException)
        {
            Check(false, $"{what} failed on the target: {e}", vm);
        }
    }


    private static long Median(IEnumerable<long> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[sorted.Count / 2];
    }

    /// <summary>Kernel-log time (ms) of the guest's "hotplug: TEXT" line.</summary>
    internal static long KernelMs(string dmesg, string text, GuestVm vm)
    {
        var m = Regex.Match(dmesg, $@"\[\s*(\d+\.\d+)\] hotplug: {Regex.Escape(text)}\r?$", RegexOptions.Multiline);
        Check(m.Success, $"no 'hotplug: {text}' line in the guest's kernel log", vm);
        return Stamp(m.Groups[1].Value);
    }

    private static long Stamp(string seconds) => (long)(double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture) * 1000);

    /// <summary>For the guest's "mark NAME" ... "seen NAME" pair: mark to seen, the first "rescanning namespaces"
    /// in between (the host got the event) to seen, and mark to that event. All on the guest kernel's clock.</summary>
    internal static (long MarkToSeen, long EventToSeen, long MarkToEvent) Timing(string dmesg, string name, GuestVm vm)
    {
        long mark = KernelMs(dmesg, $"mark {name}", vm), seen = KernelMs(dmesg, $"seen {name}", vm);
        long ev = RescanRegex().Matches(dmesg).Select(x => Stamp(x.Groups[1].Value)).Where(t => t >= mark && t <= seen).DefaultIfEmpty(-1).First();
        Check(ev >= 0, $"the host logged no rescan between 'mark {name}' and 'seen {name}'", vm);
        return (seen - mark, seen - ev, ev - mark);
    }

    internal static void CheckBackgroundFio(Dictionary<string, (string Output, int Rc)> s, GuestVm vm)
    {
        Check(vm.Console.Contains("@@BG-FIO-WAS-RUNNING@@"), "the background fio on NSID 1 ended before the last namespace change", vm);
        var bg = Section(s, "bg-fio", vm);
        Check(bg.Rc == 0 && bg.Output.Contains("err= 0") && !bg.Output.Contains("verify:") && !bg.Output.Contains("bad magic"),
            $"background fio verify on NSID 1 failed (rc {bg.Rc})", vm);
    }

    /// <summary>Nothing in the host's kernel log that a correct target would not cause: no I/O errors, no
    /// controller resets or timeouts, no kernel warnings. <paramref name="allowed"/> excuses expected lines.</summary>
    internal static void CheckNoIoErrors(string dmesg, GuestVm vm, Func<string, bool>? allowed = null)
    {
        var lines = dmesg.Split('\n').Where(l => allowed is null || !allowed(l)).ToList();
        foreach (var bad in new[] { "I/O error", "Buffer I/O", "Call Trace", "BUG:", "Oops", "WARNING:" })
            Check(!lines.Any(l => l.Contains(bad)), $"host kernel log contains '{bad}'", vm);
        foreach (var bad in new[] { "reset", "timeout", "failed", "invalid", "Invalid", "error", "Error", "I/O Cmd" })
            Check(!lines.Any(l => l.Contains("nvme") && l.Contains(bad)), $"host kernel log has an nvme line with '{bad}'", vm);
    }

    [GeneratedRegex(@"\[\s*(\d+\.\d+)\] nvme nvme\d+: rescanning namespaces")]
    private static partial Regex RescanRegex();
}
