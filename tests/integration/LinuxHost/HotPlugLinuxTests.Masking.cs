using System.Text.RegularExpressions;
using Target;
using Target.Configuration;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// Namespace masking and in-band Namespace Attachment against the real Linux 6.1 host: two host NQNs from one guest
/// (host A = the guest's own NQN through nvme-cli, host B written to /dev/nvme-fabrics) on one subsystem. The kernel
/// groups both controllers under one subsystem, so "sees NSID 2" is per controller: a namespace disk (path) under
/// /sys/class/nvme/nvmeX; "no event" is no "rescanning namespaces" line for that controller in the kernel log.
/// </summary>
public sealed partial class HotPlugLinuxTests
{
    /// <summary>Connects hosts A and B and names their controllers $CA and $CB (by each controller's hostnqn).</summary>
    private const string ConnectTwoHosts = $$"""
        sec connect-a nvme connect -t tcp -a $T -s $P -n $N
        sec connect-b sh -c "echo transport=tcp,traddr=$T,trsvcid=$P,nqn=$N,hostnqn={{SecondHostNqn}},hostid={{SecondHostId}} > /dev/nvme-fabrics"
        D1=$(wait_dev 1) || fail "no block device for NSID 1"
        CA=; CB=
        for c in $(ls /sys/class/nvme); do read h < /sys/class/nvme/$c/hostnqn; if [ "$h" = "{{SecondHostNqn}}" ]; then CB=$c; else CA=$c; fi; done
        [ -n "$CA" ] && [ -n "$CB" ] || fail "expected a controller per host NQN, have: $(ls /sys/class/nvme)"
        echo "@@CTRLS a=$CA b=$CB@@"
        wait_ctrl_has $CA 1 || fail "$CA has no NSID 1"
        wait_ctrl_has $CB 1 || fail "$CB has no NSID 1"

        """;

    private static (string A, string B) Controllers(GuestVm vm)
    {
        var m = Regex.Match(vm.Console, @"@@CTRLS a=(nvme\d+) b=(nvme\d+)@@");
        Check(m.Success, "the guest did not name its two controllers", vm);
        return (m.Groups[1].Value, m.Groups[2].Value);
    }

    private static int Rescans(string dmesg, string ctrl) => RescanRegex().Matches(dmesg).Count(r => r.Value.Contains($"nvme {ctrl}:"));

    // ------------------------------------------------------------------ 5. masking: one host sees NSID 2 appear and go

    [Fact]
    public async Task Masking_Ns2AppearsAndGoesForHostA_HostBSeesNoEventAndNoDevice()
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(configure: c => c.Namespaces.Add(new NamespaceConfig
        {
            Nsid = 2, Backend = "memory", Size = "32M", Visibility = NamespaceConfig.VisibilityRestricted, // hidden from every host
        })), logs);
        var m = host.Manager;
        var body = ConnectTwoHosts + """
            ctrl_has $CA 2 && fail "$CA shows NSID 2 before the unmask"
            ctrl_has $CB 2 && fail "$CB shows NSID 2 before the unmask"
            nsid_dev 2 && fail "a block device for NSID 2 before the unmask"
            mark unmask
            wait_ctrl_has $CA 2 || fail "$CA never showed NSID 2 after the unmask"
            D2=$(wait_dev 2) || fail "NSID 2 has no block device after the unmask"
            seen unmask
            echo "@@NS2DEV ${D2#/dev/}@@"
            sec ns2-dd ddcmp $D2
            sec list-a nvme list-ns /dev/$CA -o json
            sec list-b nvme list-ns /dev/$CB -o json
            sec id-ns2-b nvme id-ns /dev/$CB -n 2
            sec sysfs-b ls /sys/class/nvme/$CB
            mark mask
            wait_ctrl_lacks $CA 2 || fail "$CA still shows NSID 2 after the mask"
            wait_gone 2 || fail "NSID 2 block device still there after the mask"
            seen mask
            sec sysfs-a-after ls /sys/class/nvme/$CA
            sec sysfs-b-after ls /sys/class/nvme/$CB
            sec ns1-io ddcmp $D1 100
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout);
        await MarkAsync(vm, "unmask");
        await StepAsync(vm, "unmask NSID 2 for host A", () => m.AddNamespaceHostAsync(Nqn, 2, GuestVm.HostNqn));
        await MarkAsync(vm, "mask");
        await StepAsync(vm, "mask NSID 2 for host A again", () => m.RemoveNamespaceHostAsync(Nqn, 2, GuestVm.HostNqn));

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var (ca, cb) = Controllers(vm);
        var s = GuestVm.Sections(vm.Console);
        Check(Section(s, "ns2-dd", vm).Output.Contains("identical"), "dd round trip on NSID 2 (seen by host A) failed", vm);
        Check(Regex.IsMatch(Section(s, "list-a", vm).Output, @"""nsid""\s*:\s*2\b"), $"nvme list-ns on {ca} (host A) does not show NSID 2", vm);
        var listB = Section(s, "list-b", vm).Output;
        Check(Regex.IsMatch(listB, @"""nsid""\s*:\s*1\b") && !Regex.IsMatch(listB, @"""nsid""\s*:\s*2\b"), $"nvme list-ns on {cb} (host B) should show NSID 1 only: {listB}", vm);
        var idB = Section(s, "id-ns2-b", vm).Output;
        Check(Field(idB, "nsze") is "0" or "0x0", $"host B's Identify of the masked NSID 2 is not zeros (nsze {Field(idB, "nsze")})", vm);
        foreach (var name in new[] { "sysfs-b", "sysfs-b-after", "sysfs-a-after" })
            Check(!Regex.IsMatch(Section(s, name, vm).Output, @"\bnvme\d+(c\d+)?n2\b"), $"{name}: a namespace disk for NSID 2 where there must be none", vm);
        Check(Section(s, "ns1-io", vm).Output.Contains("identical"), "NSID 1 I/O after the mask failed", vm);
        var dmesg = Section(s, "dmesg", vm).Output;
        CheckNoIoErrors(dmesg, vm);
        Check(Rescans(dmesg, ca) >= 2, $"{ca} (host A) did not rescan for both the unmask and the mask", vm);
        Check(Rescans(dmesg, cb) == 0, $"{cb} (host B) rescanned: it got a namespace event although it was never concerned", vm);
        var unmask = Timing(dmesg, "unmask", vm);
        var mask = Timing(dmesg, "mask", vm);
        Log($"host A ({ca}): NSID 2 usable {unmask.EventToSeen} ms after the event ({unmask.MarkToSeen} ms after the mark), gone {mask.EventToSeen} ms after " +
            $"the event; host B ({cb}): {Rescans(dmesg, cb)} rescans");
    }

    // ------------------------------------------------------------------ 6. in-band attachment with nvme-cli

    [Fact]
    public async Task NvmeCli_DetachNsAndAttachNs_OwnController_HostWithoutPrivilegeGetsAccessDenied()
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(configure: c =>
        {
            c.Namespaces.Add(new NamespaceConfig
            {
                Nsid = 2, Backend = "memory", Size = "32M", Visibility = NamespaceConfig.VisibilityRestricted, Hosts = [GuestVm.HostNqn, SecondHostNqn],
            });
            c.NamespaceAttachHosts = [GuestVm.HostNqn]; // host A only
        }), logs);
        var body = ConnectTwoHosts + """
            wait_ctrl_has $CA 2 || fail "$CA has no NSID 2"
            wait_ctrl_has $CB 2 || fail "$CB has no NSID 2"
            read IA < /sys/class/nvme/$CA/cntlid; read IB < /sys/class/nvme/$CB/cntlid
            echo "@@CNTLIDS a=$IA b=$IB@@"
            sec list-ctrl-all nvme list-ctrl /dev/$CA
            sec list-ctrl-ns2 nvme list-ctrl /dev/$CA -n 2
            sec b-detach nvme detach-ns /dev/$CB -n 2 -c $IB
            sec a-detach-b nvme detach-ns /dev/$CA -n 2 -c $IB
            ctrl_has $CB 2 || fail "$CB lost NSID 2 although every detach of it was refused"
            mark detach
            sec a-detach nvme detach-ns /dev/$CA -n 2 -c $IA
            wait_ctrl_lacks $CA 2 || fail "$CA still shows NSID 2 after detach-ns"
            seen detach
            ctrl_has $CB 2 || fail "$CB lost NSID 2 when host A detached it"
            sec list-ctrl-ns2-after nvme list-ctrl /dev/$CA -n 2
            sec sysfs-a-detached ls /sys/class/nvme/$CA
            mark attach
            sec a-attach nvme attach-ns /dev/$CA -n 2 -c $IA
            wait_ctrl_has $CA 2 || fail "$CA never showed NSID 2 again after attach-ns"
            seen attach
            D2=$(wait_dev 2) || fail "NSID 2 has no block device"
            sec ns2-dd ddcmp $D2
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout);
        await MarkAsync(vm, "detach");
        await MarkAsync(vm, "attach");

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var (ca, cb) = Controllers(vm);
        var ids = Regex.Match(vm.Console, @"@@CNTLIDS a=(\d+) b=(\d+)@@");
        Check(ids.Success, "the guest did not print the CNTLIDs", vm);
        string ia = ids.Groups[1].Value, ib = ids.Groups[2].Value;
        var s = GuestVm.Sections(vm.Console);

        // nvme-cli reports the status the target answered: Access Denied for a host without the privilege and for
        // another host's controller.
        foreach (var refused in new[] { "b-detach", "a-detach-b" })
        {
            var r = Section(s, refused, vm);
            Check(r.Rc != 0 && Regex.IsMatch(r.Output, @"(?i)access.?denied|0x4?286"), $"{refused}: expected nvme-cli to report Access Denied, got rc {r.Rc}: {r.Output}", vm);
        }
        Check(Section(s, "a-detach", vm).Rc == 0, $"detach-ns of host A's own controller failed: {Section(s, "a-detach", vm).Output}", vm);
        Check(Section(s, "a-attach", vm).Rc == 0, $"attach-ns of host A's own controller failed: {Section(s, "a-attach", vm).Output}", vm);
        // nvme list-ctrl prints "[   0]:0x1" per controller (hexadecimal); sysfs cntlid is decimal.
        static string[] Listed(string output) => [.. Regex.Matches(output, @"\]:\s*(0x[0-9a-fA-F]+|\d+)").Select(x => x.Groups[1].Value)
            .Select(v => (v.StartsWith("0x", StringComparison.Ordinal) ? Convert.ToInt32(v[2..], 16) : int.Parse(v, System.Globalization.CultureInfo.InvariantCulture))
                .ToString(System.Globalization.CultureInfo.InvariantCulture))];
        var all = Listed(Section(s, "list-ctrl-all", vm).Output);
        Check(all.Contains(ia) && all.Contains(ib), $"nvme list-ctrl (Identify CNS 13h) does not list both controllers {ia} and {ib}: {Section(s, "list-ctrl-all", vm).Output}", vm);
        var before = Listed(Section(s, "list-ctrl-ns2", vm).Output);
        Check(before.Contains(ia) && before.Contains(ib), $"nvme list-ctrl -n 2 (CNS 12h) before the detach should list {ia} and {ib}: {Section(s, "list-ctrl-ns2", vm).Output}", vm);
        var after = Listed(Section(s, "list-ctrl-ns2-after", vm).Output);
        Check(!after.Contains(ia) && after.Contains(ib), $"nvme list-ctrl -n 2 after the detach should list {ib} only: {Section(s, "list-ctrl-ns2-after", vm).Output}", vm);
        Check(!Regex.IsMatch(Section(s, "sysfs-a-detached", vm).Output, @"\bnvme\d+(c\d+)?n2\b"), $"{ca} still has a namespace disk for NSID 2 after the detach", vm);
        Check(Section(s, "ns2-dd", vm).Output.Contains("identical"), "dd round trip on NSID 2 after the attach failed", vm);

        var dmesg = Section(s, "dmesg", vm).Output;
        // The refused commands may be logged by the host as failed admin commands (opcode 15h); nothing else may fail.
        CheckNoIoErrors(dmesg, vm, allowed: l => l.Contains("Cmd(0x15)") || l.Contains("Access Denied", StringComparison.OrdinalIgnoreCase));
        Check(Rescans(dmesg, cb) == 0, $"{cb} (host B) rescanned: it got a namespace event for host A's detach or attach", vm);
        var ns2 = host.Target.FindSubsystem(Nqn)!.GetNamespace(2)!;
        Check(ns2.Visibility.Hosts.SetEquals([GuestVm.HostNqn, SecondHostNqn]), $"NSID 2 should be back with both hosts, is {ns2.Visibility}", vm);
        Log($"detach-ns: {ca} lost NSID 2 {KernelMs(dmesg, "seen detach", vm) - KernelMs(dmesg, "mark detach", vm)} ms after the command was issued; " +
            $"attach-ns: back after {KernelMs(dmesg, "seen attach", vm) - KernelMs(dmesg, "mark attach", vm)} ms; host B rescans: {Rescans(dmesg, cb)}");
    }
}
