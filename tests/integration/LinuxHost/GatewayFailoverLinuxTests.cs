using System.Net;
using System.Net.Sockets;
using Integration.Tests.Ceph;
using Target;
using Target.Configuration;
using Xunit.Abstractions;

using static Integration.Tests.LinuxHost.GuestAssert;
using H = Integration.Tests.LinuxHost.HotPlugLinuxTests;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// Two gateways serve one subsystem whose namespace is one Ceph RBD image; the real Linux host (6.1 and 6.12, native
/// multipath) finds both through the first gateway's discovery log (nvme connect-all), sees two paths, one optimized
/// and one non-optimized (ANA), and runs fio randwrite with crc32c verify on the multipath device while the optimized
/// gateway is moved by plan (to the other gateway and back) and then killed (its connections reset, its listener
/// gone) and the survivor is made optimized; the killed one
/// comes back non-optimized and the host reconnects it; then the same the other way round. fio finishes with zero
/// errors; the I/O pause at each failover is measured. The takeover itself is driven by the test, as an operator or
/// an orchestrator would (automatic takeover through a RADOS lock is not built yet).
/// </summary>
[Collection(CephCollection.Name)]
public sealed class GatewayFailoverLinuxTests(CephCluster ceph, ITestOutputHelper output)
{
    private const string Nqn = LinuxTarget.Nqn;
    private void Log(string line) => output.WriteLine(line);

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private TargetConfig Gateway(string image, ushort portId, int port, int peerPort, ushort cntlidMin)
    {
        var config = LinuxTarget.Config(port, s =>
        {
            s.Namespaces = [new NamespaceConfig { Nsid = 1, Backend = "rbd", Pool = CephCluster.Pool, Image = image, Size = "256M", CephConf = ceph.Conf }];
            (s.CntlidMin, s.CntlidMax) = (cntlidMin, (ushort)(cntlidMin + 99));
        });
        config.Ports[0].Id = portId;
        config.Subsystems.RemoveAll(s => s.Nqn != Nqn);
        config.Peers = [new PeerConfig { PortId = portId == 1 ? (ushort)2 : (ushort)1, Address = "10.0.2.2", Port = peerPort, Subsystems = [Nqn] }];
        return config;
    }

    private static async Task<TargetHost> StartAsync(TargetConfig config, Microsoft.Extensions.Logging.ILoggerFactory logs, string anaState)
    {
        var host = await TargetHost.StartAsync(config, logs);
        await host.Manager.SetAnaStateAsync(Nqn, 1, anaState, null);
        return host;
    }

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task TwoGateways_KillTheOptimizedOne_UnderFio_ZeroErrors(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        string image = "mp-" + Guid.NewGuid().ToString("N")[..8];
        int pa = FreePort(), pb = FreePort();
        var configA = Gateway(image, 1, pa, pb, 1);
        var configB = Gateway(image, 2, pb, pa, 100);
        TargetHost? a = await StartAsync(configA, logs, "optimized");
        TargetHost? b = await StartAsync(configB, logs, "non-optimized");
        try
        {
            var body = $$"""
                PB={{pb}}
                # the host logs every failed reconnect to a dead gateway: keep the kernel off the console (dmesg keeps it)
                dmesg -n 1
                paths() { for _c in /sys/class/nvme/nvme*; do for _a in $_c/nvme*c*n*/ana_state; do [ -r $_a ] && echo "$(cat $_c/address) $(cat $_c/state) $(cat $_a)"; done; done; }
                paths_has() { paths | grep -q "$1"; }
                sec discover nvme discover -t tcp -a $T -s $P
                sec connect nvme connect-all -t tcp -a $T -s $P --ctrl-loss-tmo=120 --reconnect-delay=1
                poll 600 sh -c '[ $(ls -d /sys/class/nvme/nvme*/nvme*c*n1 2>/dev/null | wc -l) -ge 2 ]' || fail "the host did not get two paths: $(paths)"
                D1=$(wait_dev 1) || fail "no multipath device for NSID 1"
                sec paths-start paths
                sec list-subsys nvme list-subsys
                bg_fio $D1
                wait_writes 1 300 || fail "background fio did not start"
                # a planned move first: B becomes optimized, then A non-optimized, under fio; and back
                for mv in to-b to-a; do
                  if [ $mv = to-b ]; then TO=$PB; FROM=$P; else TO=$P; FROM=$PB; fi
                  mark move-$mv
                  poll 1200 paths_has "trsvcid=$TO.* live optimized" || fail "move $mv: the target path never turned optimized: $(paths)"
                  poll 1200 paths_has "trsvcid=$FROM.* live non-optimized" || fail "move $mv: the old path never turned non-optimized: $(paths)"
                  _w=$(ns_writes 1); wait_writes 1 $((_w + 300)) || fail "move $mv: fio made no progress"
                  seen move-$mv
                done
                for round in 1 2; do
                  if [ $round = 1 ]; then DEAD=$P; LIVE=$PB; else DEAD=$PB; LIVE=$P; fi
                  mark kill-$round
                  poll 2400 paths_has "trsvcid=$LIVE.* live optimized" || fail "round $round: the survivor never turned optimized: $(paths)"
                  _w=$(ns_writes 1); wait_writes 1 $((_w + 300)) || fail "round $round: fio made no progress on the survivor"
                  seen kill-$round
                  sec paths-killed-$round paths
                  mark restart-$round
                  poll 2400 paths_has "trsvcid=$DEAD.* live non-optimized" || fail "round $round: the restarted gateway never came back non-optimized: $(paths)"
                  seen restart-$round
                  sec paths-restarted-$round paths
                  _w=$(ns_writes 1); wait_writes 1 $((_w + 300)) || fail "round $round: fio made no progress after the restart"
                done
                bg_stop
                sec dmesg dmesg
                sec disconnect nvme disconnect -n $N
                """;
            await using var vm = GuestVm.Start(H.Script(pa, body), H.GuestTimeout, kernel: kernel);
            // Planned moves: the new owner turns optimized before the old one steps down, so a path stays optimized.
            foreach (var (mv, to, from) in new[] { ("to-b", b, a), ("to-a", a, b) })
            {
                await H.MarkAsync(vm, $"move-{mv}");
                await H.StepAsync(vm, $"move {mv}: new owner optimized", () => to!.Manager.SetAnaStateAsync(Nqn, 1, "optimized", null));
                await H.StepAsync(vm, $"move {mv}: old owner non-optimized", () => from!.Manager.SetAnaStateAsync(Nqn, 1, "non-optimized", null));
            }
            for (int round = 1; round <= 2; round++)
            {
                await H.MarkAsync(vm, $"kill-{round}");
                // The optimized gateway dies: connections reset, listener gone (as SIGKILL leaves it to the host).
                var dead = round == 1 ? a : b;
                await dead!.StopAsync(TimeSpan.Zero);
                await dead.DisposeAsync();
                if (round == 1) a = null; else b = null;
                var survivor = round == 1 ? b! : a!;
                await H.StepAsync(vm, "make the survivor optimized", () => survivor.Manager.SetAnaStateAsync(Nqn, 1, "optimized", null));
                await H.MarkAsync(vm, $"restart-{round}");
                if (round == 1) a = await StartAsync(configA, logs, "non-optimized");
                else b = await StartAsync(configB, logs, "non-optimized");
            }

            int rc = await vm.WaitForExitAsync(H.GuestTimeout);
            Check(rc == 0, $"guest script exited {rc}", vm);
            var s = GuestVm.Sections(vm.Console);
            var discover = Section(s, "discover", vm).Output;
            Check(discover.Contains($"trsvcid: {pa}") && discover.Contains($"trsvcid: {pb}"), "the discovery log does not list both gateways: " + discover, vm);
            var start = Section(s, "paths-start", vm).Output;
            Check(start.Contains($"trsvcid={pa}") && start.Contains("live optimized") && start.Contains($"trsvcid={pb}") && start.Contains("live non-optimized"),
                "at the start the paths are not one optimized and one non-optimized: " + start, vm);
            H.CheckBackgroundFio(s, vm);
            var dmesg = Section(s, "dmesg", vm).Output;
            foreach (var bad in new[] { "I/O error", "Buffer I/O", "Call Trace", "BUG:", "Oops", "WARNING:" })
                Check(!dmesg.Contains(bad), $"host kernel log contains '{bad}'", vm);
            foreach (var mv in new[] { "to-b", "to-a" })
                Log($"planned move {mv}: both paths in their new states and 300 more writes done {H.KernelMs(dmesg, $"seen move-{mv}", vm) - H.KernelMs(dmesg, $"mark move-{mv}", vm)} ms after the move began");
            for (int round = 1; round <= 2; round++)
            {
                long pause = H.KernelMs(dmesg, $"seen kill-{round}", vm) - H.KernelMs(dmesg, $"mark kill-{round}", vm);
                long back = H.KernelMs(dmesg, $"seen restart-{round}", vm) - H.KernelMs(dmesg, $"mark restart-{round}", vm);
                Log($"round {round}: from the kill to 300 more writes done on the survivor, optimized: {pause} ms; restarted gateway back as a live non-optimized path after {back} ms");
                Log($"  paths after the kill: {Section(s, $"paths-killed-{round}", vm).Output.Replace('\n', '|')}; after the restart: {Section(s, $"paths-restarted-{round}", vm).Output.Replace('\n', '|')}");
            }
            Log("background fio: " + string.Join(" | ", Section(s, "bg-fio", vm).Output.Split('\n').Where(l => l.Contains("IOPS=") || l.Contains("err=")).Select(l => l.Trim())));
        }
        finally
        {
            if (a != null) await a.DisposeAsync();
            if (b != null) await b.DisposeAsync();
        }
    }
}
