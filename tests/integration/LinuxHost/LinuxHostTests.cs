using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Target;
using Xunit.Abstractions;
using Xunit.Sdk;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// A real Linux kernel NVMe/TCP initiator (Debian 6.1, and 6.12 for the tests over <see cref="GuestKernels.Both"/>;
/// a Debian kernel under QEMU, nvme-cli, fio) against the target
/// built from this commit. Each test boots one guest; steps are grouped to keep boots few.
/// </summary>
public sealed partial class LinuxHostTests(ITestOutputHelper output)
{
    private static readonly TimeSpan GuestTimeout = TimeSpan.FromMinutes(9);

    private void Log(string line) => output.WriteLine(line);

    private static string Script(int port, string body) =>
        GuestScripts.Prelude + $"T=10.0.2.2; P={port}; N={LinuxTarget.Nqn}; N2={LinuxTarget.RestrictedNqn}\n" + body;



    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task Discovery_NvmeCli_DataVerify_Digests_Limits_InvalidInput(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        int port = host.Endpoints[0].Port;
        var body = """
            sec discover nvme discover -t tcp -a $T -s $P
            loop10() { i=0; while [ $i -lt 10 ]; do nvme connect -t tcp -a $T -s $P -n $N >/dev/null || return 1; nsdev 1 >/dev/null || return 2; nvme list | grep -q nvme || return 3; nvme disconnect -n $N >/dev/null || return 4; nodevs || return 5; i=$((i+1)); done; echo cycles=$i; }
            qsize() { nvme connect -t tcp -a $T -s $P -n $N --queue-size=$1 || return 1; D=$(nsdev 1) || return 2; dd if=$D of=/dev/null bs=4k count=16 iflag=direct || return 3; cat /sys/block/$(basename $D)/queue/nr_requests 2>/dev/null || cat /sys/block/nvme*c*n1/queue/nr_requests; nvme disconnect -n $N; }
            # (6.12's multipath head, bio-based, has no nr_requests: then the path device's, nvme0c0n1)
            healthy() { nvme connect -t tcp -a $T -s $P -n $N || return 1; D=$(nsdev 1) || return 2; verify $D 4k 8 1M || return 3; nvme disconnect -n $N; }
            mdtsio() { dd if=/dev/urandom of=/tmp/a bs=1M count=4 2>/dev/null && dd if=/tmp/a of=$1 bs=1M count=4 oflag=direct 2>/dev/null && dd if=$1 of=/tmp/b bs=1M count=4 iflag=direct 2>/dev/null && cmp /tmp/a /tmp/b && echo identical; }
            sec connect-loop loop10
            sec connect nvme connect -t tcp -a $T -s $P -n $N
            D=$(nsdev 1); C=$(ctrldev)
            sec id-ctrl nvme id-ctrl $C
            sec id-ns nvme id-ns $D
            sec list-ns nvme list-ns $C
            sec ns-descs nvme ns-descs $D
            sec smart-before nvme smart-log $C
            sec feat-queues nvme get-feature $C -f 7
            sec feat-aec nvme get-feature $C -f 0xb
            sec feat-kato nvme get-feature $C -f 0xf
            off=0
            for bs in 4k 64k 1m; do for qd in 1 32; do sec fio-$bs-qd$qd verify $D $bs $qd 8M $off; off=$((off+8388608)); done; done
            sec smart-after nvme smart-log $C
            sec error-log nvme error-log $C -e 1
            sec changed-ns nvme get-log $C --log-id=4 --log-len=4096
            sec max-hw-kb cat /sys/block/$(basename $D)/queue/max_hw_sectors_kb
            sec mdts-io mdtsio $D
            sec disconnect nvme disconnect -n $N
            sec gone nodevs
            sec connect-digest nvme connect -t tcp -a $T -s $P -n $N -g -G
            D=$(nsdev 1)
            off=0
            for bs in 4k 64k 1m; do for qd in 1 32; do sec fio-dg-$bs-qd$qd verify $D $bs $qd 8M $off; off=$((off+8388608)); done; done
            sec disconnect-digest nvme disconnect -n $N
            nodevs
            sec connect-nosqflow nvme connect -t tcp -a $T -s $P -n $N --disable-sqflow
            D=$(nsdev 1)
            sec fio-nosqflow verify $D 4k 32 8M
            sec mdts-nosqflow mdtsio $D
            sec disconnect-nosqflow nvme disconnect -n $N
            nodevs
            sec qsize-mqes qsize 128
            nodevs
            sec qsize-over qsize 1024
            nodevs
            sec dmesg-main dmesg
            dmesg -c >/dev/null
            sec bad-nqn nvme connect -t tcp -a $T -s $P -n nqn.2026-01.io.nowhere:none
            sec bad-host nvme connect -t tcp -a $T -s $P -n $N2
            sec bad-port nvme connect -t tcp -a $T -s 1 -n $N
            sec healthy-after healthy
            sec dmesg-invalid dmesg
            """;
        await using var vm = GuestVm.Start(Script(port, body), GuestTimeout, kernel: kernel);
        int rc = await vm.WaitForExitAsync(GuestTimeout + TimeSpan.FromMinutes(1));
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);

        // 1. discovery
        var disc = Section(s, "discover", vm);
        Check(disc.Rc == 0, "nvme discover failed", vm);
        Check(disc.Output.Contains($"subnqn:  {LinuxTarget.Nqn}") && disc.Output.Contains("trtype:  tcp") && disc.Output.Contains("traddr:  10.0.2.2")
              && disc.Output.Contains($"trsvcid: {port}") && disc.Output.Contains("adrfam:  ipv4") && disc.Output.Contains("subtype: nvme subsystem"),
              "discovery log entry for the subsystem is wrong", vm);
        Check(!disc.Output.Contains(LinuxTarget.RestrictedNqn), "discovery lists a subsystem the host may not use", vm);

        // 2. connect/disconnect loop; the target is left with no controller of this host
        Check(Section(s, "connect-loop", vm) is { Rc: 0 } loop && loop.Output.Contains("cycles=10"), "connect/disconnect loop failed", vm);

        // 3. nvme-cli views
        Check(Section(s, "connect", vm).Rc == 0, "nvme connect failed", vm);
        var idc = Section(s, "id-ctrl", vm).Output;
        Check(Field(idc, "sn") == "LNXSUITE0001", $"id-ctrl sn: {Field(idc, "sn")}", vm);
        Check(Field(idc, "mn") == "NvmeTcpTarget", $"id-ctrl mn: {Field(idc, "mn")}", vm);
        Check(Field(idc, "subnqn") == LinuxTarget.Nqn, "id-ctrl subnqn", vm);
        Check(Field(idc, "mdts") == "8" && Field(idc, "kas") == "10" && Field(idc, "aerl") == "3", "id-ctrl mdts/kas/aerl", vm);
        Check(Field(idc, "oaes") == "0x900" && Field(idc, "ver") == "0x10300", "id-ctrl oaes/ver", vm);
        Check(Field(idc, "ioccsz") == "516" && Field(idc, "iorcsz") == "1" && Field(idc, "sgls") == "0x100001", "id-ctrl ioccsz/iorcsz/sgls", vm);
        Check(Field(idc, "maxcmd") == "128" && Field(idc, "nn") == "1024" && Field(idc, "oncs") == "0xc", "id-ctrl maxcmd/nn/oncs", vm);
        var idns = Section(s, "id-ns", vm).Output;
        Check(Field(idns, "nsze") == "0x40000" && Field(idns, "ncap") == "0x40000", $"id-ns nsze {Field(idns, "nsze")}", vm);
        Check(idns.Contains("lbaf  0 : ms:0   lbads:9  rp:0 (in use)"), "id-ns LBA format 0: 512-byte blocks, in use", vm);
        Check(Section(s, "list-ns", vm).Output.Contains("[   0]:0x1"), "list-ns", vm);
        var descs = Section(s, "ns-descs", vm).Output;
        var ns1 = host.Target.FindSubsystem(LinuxTarget.Nqn)!.GetNamespace(1)!;
        Check(descs.Contains($"uuid    : {ns1.Ids.Uuid}") && descs.Contains("nguid   : " + Convert.ToHexStringLower(ns1.Ids.Nguid)), "ns-descs ids", vm);
        Check(Section(s, "feat-queues", vm).Output.Contains("Current value:0x00010001"), "get-feature 7: 2 I/O queues granted to a 2-CPU host", vm);
        Check(Section(s, "feat-aec", vm).Output.Contains("Current value:0x00000900"), "get-feature 0xb: namespace attribute and ANA change notices enabled", vm);
        Check(Section(s, "feat-kato", vm).Output.Contains("Current value:0x00001388"), "get-feature 0xf: KATO 5000 ms", vm);

        // 4. data: fio crc32c verify without and with digests
        foreach (var prefix in new[] { "fio", "fio-dg" })
            foreach (var bs in new[] { "4k", "64k", "1m" })
                foreach (var qd in new[] { 1, 32 })
                {
                    var f = Section(s, $"{prefix}-{bs}-qd{qd}", vm);
                    Check(f.Rc == 0 && f.Output.Contains("err= 0"), $"{prefix} {bs} QD{qd} verify failed", vm);
                }
        foreach (var name in s.Keys.Where(k => k.StartsWith("fio", StringComparison.Ordinal)))
            Log($"{name}: " + string.Join(" | ", s[name].Output.Split('\n').Where(l => l.Contains("IOPS=")).Select(l => l.Trim())));
        Check(Section(s, "connect-digest", vm).Rc == 0, "connect with -g -G failed", vm);
        // SQ flow control disabled: reads complete with C2HData SUCCESS and no response capsule
        Check(Section(s, "connect-nosqflow", vm).Rc == 0, "connect --disable-sqflow failed", vm);
        Check(Section(s, "fio-nosqflow", vm) is { Rc: 0 } nf && nf.Output.Contains("err= 0"), "fio verify with SQ flow control disabled failed", vm);
        Check(Section(s, "mdts-nosqflow", vm).Output.Contains("identical"), "1 MiB round trip with SQ flow control disabled", vm);

        // smart-log counters moved: 6 verify runs of 8 MiB written and read back = 48 MiB each way
        long unitsW = long.Parse(Regex.Match(Section(s, "smart-after", vm).Output, @"Data Units Written\s*:\s*([\d,]+)").Groups[1].Value.Replace(",", ""));
        long unitsR = long.Parse(Regex.Match(Section(s, "smart-after", vm).Output, @"Data Units Read\s*:\s*([\d,]+)").Groups[1].Value.Replace(",", ""));
        long unitsBefore = long.Parse(Regex.Match(Section(s, "smart-before", vm).Output, @"Data Units Written\s*:\s*([\d,]+)").Groups[1].Value.Replace(",", ""));
        Check(unitsW - unitsBefore >= 48L * 1024 * 1024 / 512 / 1000 && unitsR >= 48L * 1024 * 1024 / 512 / 1000, $"smart-log data units did not move: W {unitsBefore}->{unitsW}, R {unitsR}", vm);
        Check(Section(s, "error-log", vm).Rc == 0 && Section(s, "changed-ns", vm).Rc == 0, "error-log / changed namespace log failed", vm);

        // 5. limits: MDTS 1 MiB and I/O at that size; queue size at MQES+1 and above (host clamps)
        Check(Section(s, "max-hw-kb", vm).Output.Trim() == "1024", "max_hw_sectors_kb should be 1024 (MDTS 8)", vm);
        Check(Section(s, "mdts-io", vm).Output.Contains("identical"), "1 MiB direct I/O round trip", vm);
        Check(Section(s, "qsize-mqes", vm).Rc == 0, "connect --queue-size=128 failed", vm);
        var over = Section(s, "qsize-over", vm);
        // the block layer's depth: MQES+1 = 128 on 6.1; 6.12's tag set is sqsize (0's based), one fewer
        string depth = kernel == GuestKernel.Linux61 ? "128" : "127";
        Check(over.Rc == 0 && over.Output.Split('\n').Any(l => l.Trim() == depth), $"connect --queue-size=1024 failed or the queue depth is not {depth} (clamped to MQES+1)", vm);
        var dmesgMain = Section(s, "dmesg-main", vm).Output;
        Check(dmesgMain.Contains("queue_size 1024 > ctrl sqsize 128, clamping down"), "host did not clamp the queue size to MQES+1", vm);
        Check(dmesgMain.Contains("nvme nvme0: creating 2 I/O queues.") && dmesgMain.Contains("mapped 2/0/0 default/read/poll queues"), "a 2-CPU host should get 2 I/O queues", vm);

        // nothing in the host's log that a correct target would not cause
        foreach (var bad in new[] { "got bad", "unexpected", "SUCCESS set", "exceeded", "digest", "timeout", "Buffer I/O", "I/O error",
                     "failed", "invalid", "Invalid", "reset", "r2t", "Call Trace", "BUG", "WARNING" })
            Check(!dmesgMain.Split('\n').Any(l => l.Contains("nvme") && l.Contains(bad) && !l.Contains("clamping down")), $"host kernel log contains an nvme line with '{bad}'", vm);

        // 6. invalid input: clean failures, target healthy after
        Check(Section(s, "bad-nqn", vm).Rc != 0, "connect to an unknown NQN succeeded", vm);
        Check(Section(s, "bad-host", vm).Rc != 0, "connect with a host NQN not allowed succeeded", vm);
        Check(Section(s, "bad-port", vm).Rc != 0, "connect to a bad port succeeded", vm);
        Check(Section(s, "healthy-after", vm) is { Rc: 0 } h && h.Output.Contains("err= 0"), "target not healthy after invalid input", vm);
        var dmesgInvalid = Section(s, "dmesg-invalid", vm).Output;
        Check(dmesgInvalid.Contains("Connect Invalid Data Parameter") || dmesgInvalid.Contains("subsysnqn"), "host log does not name the bad subsystem NQN", vm);
        Check(dmesgInvalid.Contains("Connect Invalid Host") || dmesgInvalid.Contains("hostnqn"), "host log does not report the host as not allowed", vm);

        // the target is left with no controller and no queue of this host
        await Poll.UntilAsync(() => !host.Target.Controllers.Any() && host.Target.QueueCount == 0, TimeSpan.FromSeconds(10));
        Assert.Empty(host.Target.Controllers);
        Assert.Equal(0, host.Target.QueueCount);
    }

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task DataPersistsAcrossTargetRestart_FileNamespace(GuestKernel kernel)
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-persist-");
        try
        {
            var image = Path.Combine(dir.FullName, "ns2.img");
            var config = LinuxTarget.Config(configure: s => s.Namespaces.Add(new Target.Configuration.NamespaceConfig { Nsid = 2, Backend = "file", Path = image, Size = "64M" }));
            config.Storage = new Target.Configuration.StorageConfig { Directories = [dir.FullName] };
            using var logs = LinuxTarget.Logs(Log);
            string written;
            int port;
            await using (var host = await TargetHost.StartAsync(config, logs))
            {
                port = host.Endpoints[0].Port;
                var body = """
                    sec connect nvme connect -t tcp -a $T -s $P -n $N
                    D=$(nsdev 2)
                    dd if=/dev/urandom of=/tmp/p bs=1M count=8 2>/dev/null
                    sec write dd if=/tmp/p of=$D bs=1M seek=1 count=8 oflag=direct
                    sec flush nvme flush $D
                    sec sha sha256sum /tmp/p
                    sec disconnect nvme disconnect -n $N
                    """;
                await using var vm = GuestVm.Start(Script(port, body), GuestTimeout, kernel: kernel);
                Check(await vm.WaitForExitAsync(GuestTimeout + TimeSpan.FromMinutes(1)) == 0, "guest script failed", vm);
                var s = GuestVm.Sections(vm.Console);
                Check(Section(s, "write", vm).Rc == 0 && Section(s, "flush", vm).Rc == 0, "write/flush failed", vm);
                written = Section(s, "sha", vm).Output.Trim().Split(' ')[0];
            }
            // What the host wrote is in the file itself...
            var onDisk = File.ReadAllBytes(image).AsSpan(1 << 20, 8 << 20).ToArray();
            Assert.Equal(written, Convert.ToHexStringLower(SHA256.HashData(onDisk)));

            // ...and a restarted target serves it back.
            await using (var host = await TargetHost.StartAsync(config, logs))
            {
                var body = """
                    sec connect nvme connect -t tcp -a $T -s $P -n $N
                    D=$(nsdev 2)
                    sec sha sh -c "dd if=$D bs=1M skip=1 count=8 iflag=direct 2>/dev/null | sha256sum"
                    sec disconnect nvme disconnect -n $N
                    """;
                await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);
                Check(await vm.WaitForExitAsync(GuestTimeout + TimeSpan.FromMinutes(1)) == 0, "guest script failed", vm);
                var read = Section(GuestVm.Sections(vm.Console), "sha", vm).Output.Trim().Split(' ')[0];
                Check(read == written, $"read back {read}, wrote {written}", vm);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task KeepAlive_FrozenHostControllerIsFreedAfterKato(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(LinuxTarget.Config(), logs);
        var body = """
            sec connect nvme connect -t tcp -a $T -s $P -n $N --keep-alive-tmo=5
            nsdev 1 >/dev/null
            echo "@@CONNECTED@@"
            sleep 600
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);
        await vm.WaitForLineAsync("^@@CONNECTED@@", GuestTimeout);
        var ctrl = host.Target.Controllers.SingleOrDefault(c => c.HostNqn == GuestVm.HostNqn && !c.IsDiscovery);
        Check(ctrl != null && ctrl.KeepAliveTimeoutMs == 5000 && ctrl.IoQueueCount == 2, "the guest's controller (KATO 5000, 2 I/O queues) is not there", vm);

        vm.Freeze(); // connections stay open, the host goes silent
        var frozenAt = DateTime.UtcNow;
        await Poll.UntilAsync(() => ctrl!.IsDestroyed, TimeSpan.FromSeconds(60));
        var after = DateTime.UtcNow - frozenAt;
        Check(ctrl!.IsDestroyed, "controller still alive 60 s after the host froze", vm);
        Check(after >= TimeSpan.FromSeconds(4), $"controller destroyed {after.TotalSeconds:F1} s after the freeze, before KATO", vm);
        Assert.Empty(host.Target.Controllers);
        Log($"controller freed {after.TotalSeconds:F1} s after the host froze (KATO 5 s)");
    }

    /// <summary>The polling mode (<c>--poll</c>, two reactors) under the real Linux host: its admin and two I/O
    /// connections spread over the reactors, fio's crc32c verify at 4 KiB, 128 KiB and 1 MiB at QD32, without and
    /// with header and data digests, and nothing left on the reactors after the disconnect.</summary>
    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task PollingMode_DataVerify_WithAndWithoutDigests(GuestKernel kernel)
    {
        var config = LinuxTarget.Config();
        config.Polling = new Target.Configuration.PollingConfig { Enabled = true, Reactors = 2 };
        using var logs = LinuxTarget.Logs(Log);
        await using var host = await TargetHost.StartAsync(config, logs);
        Assert.Equal([0, 0], host.ReactorConnections);
        var body = """
            sec connect nvme connect -t tcp -a $T -s $P -n $N
            D=$(nsdev 1)
            echo "@@CONNECTED@@"
            off=0
            for bs in 4k 128k 1m; do sec fio-$bs verify $D $bs 32 8M $off; off=$((off+8388608)); done
            sec disconnect nvme disconnect -n $N
            sec connect-dg nvme connect -t tcp -a $T -s $P -n $N -g -G
            D=$(nsdev 1)
            for bs in 4k 128k 1m; do sec fio-dg-$bs verify $D $bs 32 8M $off; off=$((off+8388608)); done
            sec disconnect-dg nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);
        await vm.WaitForLineAsync("^@@CONNECTED@@", GuestTimeout);
        var spread = host.ReactorConnections.ToArray(); // fio is still to run: the host is connected
        Check(spread.Length == 2 && spread.Sum() == 3 && spread.Min() >= 1, $"admin + 2 I/O connections over 2 reactors, got [{string.Join(",", spread)}]", vm);
        Check(await vm.WaitForExitAsync(GuestTimeout + TimeSpan.FromMinutes(1)) == 0, "guest script failed", vm);
        var s = GuestVm.Sections(vm.Console);
        Check(Section(s, "connect", vm).Rc == 0 && Section(s, "connect-dg", vm).Rc == 0, "nvme connect failed", vm);
        foreach (var prefix in new[] { "fio", "fio-dg" })
            foreach (var bs in new[] { "4k", "128k", "1m" })
            {
                var f = Section(s, $"{prefix}-{bs}", vm);
                Check(f.Rc == 0 && f.Output.Contains("err= 0"), $"{prefix} {bs} QD32 verify failed under --poll", vm);
                Log($"{prefix}-{bs}: " + string.Join(" | ", f.Output.Split('\n').Where(l => l.Contains("IOPS=")).Select(l => l.Trim())));
            }
        Check(Section(s, "disconnect-dg", vm).Rc == 0, "nvme disconnect failed", vm);
        Assert.True(await Poll.UntilAsync(() => host.ReactorConnections.Sum() == 0, TimeSpan.FromSeconds(15)),
            $"reactors still hold [{string.Join(",", host.ReactorConnections)}] after the disconnect");
        // A reactor lets a connection go when it reads the FIN; the queue closes and its controller is destroyed
        // a few thread-pool hops later (the writer ends first). The FIN may come only as QEMU exits, so wait for
        // that too instead of racing it.
        await Poll.UntilAsync(() => !host.Target.Controllers.Any() && host.Target.QueueCount == 0, TimeSpan.FromSeconds(10));
        Assert.Empty(host.Target.Controllers);
        Assert.Equal(0, host.Target.QueueCount);
    }
}
