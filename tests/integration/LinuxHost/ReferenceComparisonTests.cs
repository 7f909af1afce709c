using System.Text.RegularExpressions;
using Target;
using Xunit.Abstractions;
using Xunit.Sdk;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// The same nvme-cli commands against the guest kernel's own target (nvmet-tcp, configured through configfs
/// inside the guest) and against ours: the fields a Linux host depends on must agree, and our target must
/// not make the host log anything the reference does not.
/// </summary>
public sealed class ReferenceComparisonTests(ITestOutputHelper output)
{
    private const string RefNqn = "nqn.2026-01.io.reference:nvmet";

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task SameCommands_AgainstKernelNvmetAndOurs_HostSeesTheSame(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(output.WriteLine);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        var script = GuestScripts.Prelude + $"P={host.Endpoints[0].Port}; N={LinuxTarget.Nqn}; REF={RefNqn}\n" + """
            CFG=/sys/kernel/config/nvmet
            modprobe nvmet; modprobe nvmet-tcp; modprobe brd rd_nr=1 rd_size=65536
            _k=0; while [ ! -e /dev/ram0 ] && [ $_k -lt 50 ]; do sleep 0.1; _k=$((_k+1)); done
            mkdir $CFG/subsystems/$REF
            echo 1 > $CFG/subsystems/$REF/attr_allow_any_host
            mkdir $CFG/subsystems/$REF/namespaces/1
            printf /dev/ram0 > $CFG/subsystems/$REF/namespaces/1/device_path
            echo 1 > $CFG/subsystems/$REF/namespaces/1/enable
            mkdir $CFG/ports/1
            echo tcp > $CFG/ports/1/addr_trtype; echo ipv4 > $CFG/ports/1/addr_adrfam
            echo 127.0.0.1 > $CFG/ports/1/addr_traddr; echo 4420 > $CFG/ports/1/addr_trsvcid
            ln -s $CFG/subsystems/$REF $CFG/ports/1/subsystems/$REF
            dmesg -c > /dev/null
            runall() {
              sec $1-discover nvme discover -t tcp -a $2 -s $3
              sec $1-connect nvme connect -t tcp -a $2 -s $3 -n $4
              D=$(nsdev 1); C=$(ctrldev)
              sec $1-id-ctrl nvme id-ctrl $C
              sec $1-id-ns nvme id-ns $D
              sec $1-ns-descs nvme ns-descs $D
              sec $1-feat7 nvme get-feature $C -f 7
              sec $1-feat0f nvme get-feature $C -f 0xf
              sec $1-feat06 nvme get-feature $C -f 6
              sec $1-smart nvme smart-log $C
              sec $1-ana-log nvme ana-log $C
              sec $1-ana-state sh -c 'cat /sys/class/nvme/${0#/dev/}/nvme*c*n*/ana_state' $C
              sec $1-fio verify $D 4k 16 4M
              sec $1-disconnect nvme disconnect -n $4
              nodevs
              sec $1-dmesg dmesg -c
            }
            runall ref 127.0.0.1 4420 $REF
            runall ours 10.0.2.2 $P $N
            """;
        await using var vm = GuestVm.Start(script, TimeSpan.FromMinutes(6), kernel: kernel);
        int rc = await vm.WaitForExitAsync(TimeSpan.FromMinutes(7));
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        string Out(string name) => s.TryGetValue(name, out var v) ? v.Output : throw new XunitException($"section {name} missing\n{vm.Console}");
        int Rc(string name) => s.TryGetValue(name, out var v) ? v.Rc : -1;

        foreach (var step in new[] { "discover", "connect", "id-ctrl", "id-ns", "ns-descs", "feat7", "feat0f", "feat06", "smart", "ana-log", "ana-state", "fio", "disconnect" })
        {
            Check(Rc("ref-" + step) == 0, $"reference nvmet: {step} failed", vm);
            Check(Rc("ours-" + step) == 0, $"our target: {step} failed where the kernel target succeeded", vm);
        }

        // Identify Controller fields a Linux host checks or depends on: equal to the kernel target's.
        foreach (var field in new[] { "sqes", "cqes", "iorcsz", "icdoff", "fcatt", "msdbd", "cntrltype", "kas", "aerl", "acl", "ver", "vwc", "oncs", "frmw", "elpe", "rab",
                     "cmic", "anatt", "anacap", "anagrpmax", "nanagrpid" })
        {
            string ours = Field(Out("ours-id-ctrl"), field), reference = Field(Out("ref-id-ctrl"), field);
            if (field == "vwc") { ours = (Convert.ToInt32(ours, 16) & 1).ToString(); reference = (Convert.ToInt32(reference, 16) & 1).ToString(); }
            if (field == "elpe") { ours = (int.Parse(ours) > 0).ToString(); reference = (int.Parse(reference) > 0).ToString(); }
            Check(ours == reference, $"id-ctrl {field}: ours '{ours}', kernel target '{reference}'", vm);
        }
        Check(Field(Out("ours-id-ctrl"), "sgls").EndsWith('1') && Field(Out("ref-id-ctrl"), "sgls").EndsWith('1'), "SGLS bits 1:0", vm);
        Check((Convert.ToUInt32(Field(Out("ours-id-ctrl"), "oaes"), 16) & 0x900) == 0x900, "OAES bits 8 and 11 (namespace attribute and ANA change notices), as the kernel target", vm);
        // ANA: the host sees one optimized group 1 holding NSID 1 on both, and a path in the optimized state.
        foreach (var tag in new[] { "ref", "ours" })
        {
            var ana = Out(tag + "-ana-log");
            Check(Regex.IsMatch(ana, @"ngrps\s*:\s*1\b") && Regex.IsMatch(ana, @"grpid\s*:\s*1\b") && Regex.IsMatch(ana, @"state\s*:\s*optimized\b")
                && Regex.IsMatch(ana, @"nsid\s*:\s*1\b"), $"{tag}: nvme ana-log is not one optimized group 1 with NSID 1: {ana}", vm);
            Check(Out(tag + "-ana-state").Trim() == "optimized", $"{tag}: the path's ana_state is not optimized", vm);
        }
        // Identify Namespace: the same 512-byte LBA format in use, NMIC shared.
        foreach (var field in new[] { "nlbaf", "flbas", "nmic", "mc", "dps" })
            Check(Field(Out("ours-id-ns"), field) == Field(Out("ref-id-ns"), field), $"id-ns {field} differs", vm);
        Check(Out("ours-id-ns").Contains("lbads:9") && Out("ref-id-ns").Contains("lbads:9"), "LBA format 512 bytes", vm);
        // Features: KATO as the host asked, write cache reported enabled by both.
        Check(Out("ours-feat0f").Contains("Current value:0x00001388") && Out("ref-feat0f").Contains("Current value:0x00001388"), "KATO 5000 ms", vm);
        Check(Out("ours-feat06").Contains("Current value:0x00000001") && Out("ref-feat06").Contains("Current value:0x00000001"), "volatile write cache enabled", vm);

        // The host logs the same kinds of lines for both (normalised: no timestamps, NQNs, addresses, numbers).
        var refLines = NormalisedNvmeLines(Out("ref-dmesg"));
        var ourLines = NormalisedNvmeLines(Out("ours-dmesg"));
        var extra = ourLines.Except(refLines).ToList();
        Check(extra.Count == 0, "host logged lines for our target that the kernel target does not cause:\n" + string.Join("\n", extra), vm);
        output.WriteLine("host log lines (normalised), both targets:\n" + string.Join("\n", ourLines));
        // Throughput under TCG emulation says little about either target, but the two are measured alike.
        foreach (var tag in new[] { "ref", "ours" })
            output.WriteLine($"{tag} fio 4k randwrite+verify QD16: " + string.Join(" | ", Out(tag + "-fio").Split('\n').Where(l => l.Contains("IOPS=")).Select(l => l.Trim())));
    }

    private static HashSet<string> NormalisedNvmeLines(string dmesg) =>
        dmesg.Split('\n')
            .Where(l => l.Contains("nvme") && !l.Contains("nvmet"))
            .Select(l => Regex.Replace(l, @"^\[[^\]]*\]\s*", ""))
            .Select(l => Regex.Replace(l, "\"nqn[^\"]*\"", "NQN"))
            .Select(l => Regex.Replace(l, @"addr [0-9.]+:\d+", "addr A"))
            .Select(l => Regex.Replace(l, @"\d+", "N"))
            .Select(l => l.Trim())
            .Where(l => l.Length > 0)
            .ToHashSet();


}
