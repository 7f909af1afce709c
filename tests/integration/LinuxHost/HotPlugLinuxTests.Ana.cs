using System.Text.RegularExpressions;
using Target;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// ANA against the real Linux host (6.1 and 6.12), native multipath (nvme_core multipath=Y): the path shows ana_state
/// optimized; the target sets the group inaccessible, the host learns it from the ANA change event and its ANA log
/// read (sysfs, nvme ana-log); a direct read started then waits in the kernel (one path, none usable: the host queues
/// the I/O) and completes with the right data once the group is optimized again, with no I/O error and no ANA
/// complaint in the kernel log.
/// </summary>
public sealed partial class HotPlugLinuxTests
{
    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task Ana_InaccessibleQueuesIo_OptimizedCompletesIt(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        var m = host.Manager;
        var sub = host.Target.FindSubsystem(Nqn)!;
        var body = """
            sec multipath cat /sys/module/nvme_core/parameters/multipath
            sec connect nvme connect -t tcp -a $T -s $P -n $N
            D1=$(wait_dev 1) || fail "no block device for NSID 1"
            C=$(for _c in /sys/class/nvme/nvme*; do grep -qx $N $_c/subsysnqn && echo ${_c##*/}; done | head -n 1)
            [ -n "$C" ] || fail "no controller for $N"
            # the path disk of NSID 1 (nvmeXcYnZ, hidden behind the multipath head) and its ana_state
            AS=$(for _d in /sys/class/nvme/$C/nvme*c*n*; do [ "$(cat $_d/nsid 2>/dev/null)" = 1 ] && [ -r $_d/ana_state ] && echo $_d/ana_state; done | head -n 1)
            [ -n "$AS" ] || fail "no ana_state attribute for NSID 1 under /sys/class/nvme/$C"
            sec ana-path echo $AS
            sec ana-grpid cat ${AS%/ana_state}/ana_grpid
            sec state-before cat $AS
            sec log-before nvme ana-log /dev/$C
            dd if=/dev/urandom of=/tmp/a bs=64k count=16 2>/dev/null
            dd if=/tmp/a of=$D1 bs=64k count=16 oflag=direct 2>/dev/null || fail "initial write failed"
            mark inaccessible
            poll 600 grep -qx inaccessible $AS || fail "ana_state never became inaccessible: $(cat $AS)"
            seen inaccessible
            sec state-inaccessible cat $AS
            sec log-inaccessible nvme ana-log /dev/$C
            ( dd if=$D1 of=/tmp/b bs=64k count=16 iflag=direct 2>/tmp/rd.err; echo $? > /tmp/rd.rc ) &
            # the reader is in the kernel waiting for its I/O (state D) and has not finished
            poll 600 sh -c 'cat /proc/[0-9]*/stat 2>/dev/null | grep -q "^[0-9]* (dd) D"' || fail "the read never blocked"
            [ -e /tmp/rd.rc ] && fail "the read finished while the group was inaccessible: rc $(cat /tmp/rd.rc) $(cat /tmp/rd.err)"
            sec read-waiting sh -c 'cat /proc/[0-9]*/stat 2>/dev/null | grep "^[0-9]* (dd) " | cut -d" " -f1-3'
            mark optimized
            poll 1200 test -s /tmp/rd.rc || fail "the read never completed after the group became optimized"
            seen optimized
            sec read-done sh -c 'cat /tmp/rd.rc; cat /tmp/rd.err; cmp /tmp/a /tmp/b && echo identical'
            sec state-after cat $AS
            sec log-after nvme ana-log /dev/$C
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);

        await MarkAsync(vm, "inaccessible");
        long readsBefore = sub.GetNamespace(1)!.Counters.ReadCommands;
        await StepAsync(vm, "ANA group 1 inaccessible", () => m.SetAnaStateAsync(Nqn, 1, "inaccessible", port: null));
        await MarkAsync(vm, "optimized");
        long readsWhileInaccessible = sub.GetNamespace(1)!.Counters.ReadCommands - readsBefore;
        await StepAsync(vm, "ANA group 1 optimized", () => m.SetAnaStateAsync(Nqn, 1, "optimized", port: null));

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        Check(Section(s, "multipath", vm).Output.Trim() == "Y", "the guest kernel runs without native multipath", vm);
        Check(Section(s, "ana-grpid", vm).Output.Trim() == "1", "the path's ana_grpid is not 1", vm);
        Check(Section(s, "state-before", vm).Output.Trim() == "optimized", "ana_state was not optimized after connecting", vm);
        Check(Section(s, "state-inaccessible", vm).Output.Trim() == "inaccessible", "ana_state did not turn inaccessible", vm);
        Check(Section(s, "state-after", vm).Output.Trim() == "optimized", "ana_state did not turn optimized again", vm);
        CheckAnaLog(Section(s, "log-before", vm).Output, "optimized", vm);
        CheckAnaLog(Section(s, "log-inaccessible", vm).Output, "inaccessible", vm);
        CheckAnaLog(Section(s, "log-after", vm).Output, "optimized", vm);
        Check(Section(s, "read-waiting", vm).Output.Contains(" D"), "the read was not waiting in the kernel", vm);
        var done = Section(s, "read-done", vm).Output;
        Check(done.TrimStart().StartsWith('0') && done.Contains("identical"), $"the queued read did not complete with the data: {done}", vm);
        Check(readsWhileInaccessible == 0, $"the target executed {readsWhileInaccessible} read(s) while the group was inaccessible", vm);
        var dmesg = Section(s, "dmesg", vm).Output;
        CheckNoIoErrors(dmesg, vm);
        foreach (var bad in new[] { "ANA", "MNAN", "ana log" })
            Check(!dmesg.Split('\n').Any(l => l.Contains("nvme") && l.Contains(bad, StringComparison.Ordinal)), $"host kernel log has an nvme line with '{bad}'", vm);
        // A command the host sent before it read the new state may be answered ANA Inaccessible (it fails over and waits);
        // nothing else may fail.
        var errors = sub.GetNamespace(1)!.Counters.ErrorsByStatus.Where(e => e.Value > 0 && e.Key != Nvme.Core.Spec.NvmeStatus.AnaInaccessible).ToList();
        Check(errors.Count == 0, "the target answered I/O on NSID 1 with " + string.Join(", ", errors.Select(e => $"{e.Key} x{e.Value}")), vm);
        Log($"{kernel}: path {Section(s, "ana-path", vm).Output.Trim()}; read blocked: {Section(s, "read-waiting", vm).Output.Trim()}");
        Log("nvme ana-log while inaccessible: " + Section(s, "log-inaccessible", vm).Output.Replace('\n', '|'));
    }

    /// <summary>nvme-cli's ana-log text: a descriptor for group 1 in <paramref name="state"/> that lists NSID 1.</summary>
    private static void CheckAnaLog(string log, string state, GuestVm vm)
    {
        Check(Regex.IsMatch(log, @"ngrps\s*:\s*1\b"), $"nvme ana-log does not show one group: {log}", vm);
        Check(Regex.IsMatch(log, @"grpid\s*:\s*1\b"), $"nvme ana-log does not show group 1: {log}", vm);
        Check(Regex.IsMatch(log, $@"state\s*:\s*{state}\b"), $"nvme ana-log does not show the group {state}: {log}", vm);
        Check(Regex.IsMatch(log, @"nsid\s*:\s*1\b"), $"nvme ana-log does not list NSID 1: {log}", vm);
    }
}
