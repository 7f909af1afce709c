using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Integration.Tests.Ceph;
using Target.Configuration;
using Xunit.Abstractions;

using static Integration.Tests.LinuxHost.GuestAssert;
using H = Integration.Tests.LinuxHost.HotPlugLinuxTests;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// Two gateway processes serve one subsystem whose namespace is one Ceph RBD image, with automatic failover (a RADOS
/// lease per ANA group, 3 s here); the real Linux host (6.1 and 6.12, native multipath) finds both through the first
/// gateway's discovery log (nvme connect-all), sees two paths, one optimized and one non-optimized (ANA), and runs fio
/// randwrite with crc32c verify on the multipath device while the group is moved by plan (`ana owner`, to the other
/// gateway and back) and then the optimized gateway is killed with SIGKILL, three times in a row: the survivor takes
/// the group over by itself once the dead owner's lease has run out (and blocklists it), the killed gateway is
/// restarted and comes back non-optimized, and the host reconnects it. fio finishes with zero errors; the I/O pause
/// at each failover is measured.
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

    private const int Rounds = 3;

    private string GatewayConfigFile(string image, string name, ushort portId, int port, int peerPort, ushort cntlidMin)
    {
        var config = LinuxTarget.Config(port, s =>
        {
            s.Namespaces = [new NamespaceConfig { Nsid = 1, Backend = "rbd", Pool = CephCluster.Pool, Image = image, Size = "256M", CephConf = ceph.Conf }];
            (s.CntlidMin, s.CntlidMax) = (cntlidMin, (ushort)(cntlidMin + 99));
            s.Failover = true;
        });
        config.Ports[0].Id = portId;
        config.Subsystems.RemoveAll(s => s.Nqn != Nqn);
        config.Peers = [new PeerConfig { PortId = portId == 1 ? (ushort)2 : (ushort)1, Address = "10.0.2.2", Port = peerPort, Subsystems = [Nqn] }];
        config.Gateway = new GatewayConfig { Name = name, LeaseSeconds = 3 };
        var file = Path.Combine(Path.GetTempPath(), $"gw-{Environment.ProcessId}-{name}-{Guid.NewGuid().ToString("N")[..6]}.json");
        File.WriteAllText(file, System.Text.Json.JsonSerializer.Serialize(config, TargetConfig.Json));
        return file;
    }

    private async Task<GatewayProcess> StartAsync(string name, int port, string configFile)
    {
        var g = await GatewayProcess.StartAsync(name, port, new Dictionary<string, string> { ["CEPH_CONF"] = ceph.Conf }, "--config", configFile);
        Log($"{name} started (pid {g.Process.Id}) on port {port}: {(await g.GroupAsync(Nqn)).State}");
        return g;
    }

    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task TwoGateways_KillTheOptimizedOne_UnderFio_ZeroErrors(GuestKernel kernel)
    {
        string image = "mp-" + Guid.NewGuid().ToString("N")[..8];
        int pa = FreePort(), pb = FreePort();
        string fileA = GatewayConfigFile(image, "gw-a", 1, pa, pb, 1), fileB = GatewayConfigFile(image, "gw-b", 2, pb, pa, 100);
        var gateways = new GatewayProcess?[2];
        try
        {
            gateways[0] = await StartAsync("gw-a", pa, fileA);
            // gw-a owns the group before gw-b starts (a gateway of an earlier run that was killed may hold the lease
            // for up to 3 s more)
            await Poll.UntilAsync(async () => (await gateways[0]!.GroupAsync(Nqn)).State == "optimized", TimeSpan.FromSeconds(15));
            gateways[1] = await StartAsync("gw-b", pb, fileB);
            Assert.True((await gateways[0]!.GroupAsync(Nqn)).State == "optimized" && (await gateways[1]!.GroupAsync(Nqn)).State == "non-optimized",
                "at the start gw-a is not the optimized owner and gw-b the non-optimized standby");
            var body = $$"""
                PB={{pb}}
                # the host logs every failed reconnect to a dead gateway: keep the kernel off the console (dmesg keeps it)
                dmesg -n 1
                paths() { for _c in /sys/class/nvme/nvme*; do for _a in $_c/nvme*c*n*/ana_state; do [ -r $_a ] && echo "$(cat $_c/address) $(cat $_c/state) $(cat $_a)"; done; done; }
                paths_has() { paths | grep -q "$1"; }
                dead_path() { ! paths_has "trsvcid=$DEAD.* live"; }
                sec discover nvme discover -t tcp -a $T -s $P
                sec connect nvme connect-all -t tcp -a $T -s $P --ctrl-loss-tmo=120 --reconnect-delay=1
                poll 600 sh -c '[ $(ls -d /sys/class/nvme/nvme*/nvme*c*n1 2>/dev/null | wc -l) -ge 2 ]' || fail "the host did not get two paths: $(paths)"
                D1=$(wait_dev 1) || fail "no multipath device for NSID 1"
                sec paths-start paths
                sec list-subsys nvme list-subsys
                bg_fio $D1
                wait_writes 1 300 || fail "background fio did not start"
                # planned moves under fio: to gw-b, and back to gw-a
                for mv in to-b to-a; do
                  if [ $mv = to-b ]; then TO=$PB; FROM=$P; else TO=$P; FROM=$PB; fi
                  mark move-$mv
                  poll 1200 paths_has "trsvcid=$TO.* live optimized" || fail "move $mv: the target path never turned optimized: $(paths)"
                  poll 1200 paths_has "trsvcid=$FROM.* live non-optimized" || fail "move $mv: the old path never turned non-optimized: $(paths)"
                  _w=$(ns_writes 1); wait_writes 1 $((_w + 300)) || fail "move $mv: fio made no progress"
                  seen move-$mv
                done
                # SIGKILL of the optimized gateway, {{Rounds}} times: gw-a, then gw-b, then gw-a
                for round in $(seq 1 {{Rounds}}); do
                  if [ $((round % 2)) = 1 ]; then DEAD=$P; LIVE=$PB; else DEAD=$PB; LIVE=$P; fi
                  mark kill-$round
                  # the host sees the killed gateway's path go (its connection reset), then fio's writes go on on the
                  # survivor, non-optimized until the dead owner's lease has run out, then optimized
                  poll 2400 dead_path || fail "round $round: the killed gateway's path stayed live: $(paths)"
                  seen dead-$round
                  _w=$(ns_writes 1); wait_writes 1 $((_w + 50)) || fail "round $round: fio made no progress after the kill"
                  seen io-$round
                  poll 2400 paths_has "trsvcid=$LIVE.* live optimized" || fail "round $round: the survivor never turned optimized: $(paths)"
                  seen kill-$round
                  _w=$(ns_writes 1); wait_writes 1 $((_w + 300)) || fail "round $round: fio made no progress on the optimized survivor"
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
            // Planned moves, asked on either gateway: the owner steps down, the named gateway takes the group.
            foreach (var (mv, to, askOn) in new[] { ("to-b", "gw-b", 0), ("to-a", "gw-a", 0) })
            {
                await H.MarkAsync(vm, $"move-{mv}");
                await H.StepAsync(vm, $"move {mv}", () => gateways[askOn]!.Api.SendAsync(HttpMethod.Post,
                    $"subsystems/{Target.Cli.ApiClient.Segment(Nqn)}/ana/1/owner", new Target.Management.AnaOwnerRequest { Gateway = to }));
            }
            for (int round = 1; round <= Rounds; round++)
            {
                await H.MarkAsync(vm, $"kill-{round}");
                int dead = round % 2 == 1 ? 0 : 1;
                var victim = gateways[dead]!;
                Check((await victim.GroupAsync(Nqn)).State == "optimized", $"round {round}: {victim.Name} is not the optimized owner before the kill", vm);
                await victim.KillAsync(); // nothing released: the survivor takes over when the lease runs out
                Log($"round {round}: {victim.Name} killed");
                await victim.DisposeAsync();
                Log($"---- {victim.Name} until killed in round {round}:\n{victim.Log.Text}");
                gateways[dead] = null;
                await H.MarkAsync(vm, $"restart-{round}");
                var survivor = gateways[1 - dead]!;
                var owner = await survivor.GroupAsync(Nqn);
                Check(owner.State == "optimized" && owner.Owner?.Self == true, $"round {round}: the survivor {survivor.Name} does not own the group: {owner}", vm);
                Check(Regex.IsMatch(survivor.Log.Text, $@"took ANA group 1 over from {victim.Name}; the previous owner {victim.Name} \(client\.\d+ at [^)]+\) is blocklisted"),
                    $"round {round}: the survivor did not log the takeover with the blocklisting of {victim.Name}", vm);
                gateways[dead] = await StartAsync(victim.Name, victim.Port, dead == 0 ? fileA : fileB);
                Check((await gateways[dead]!.GroupAsync(Nqn)).State == "non-optimized", $"round {round}: the restarted {victim.Name} is not non-optimized", vm);
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
            for (int round = 1; round <= Rounds; round++)
            {
                long dead = H.KernelMs(dmesg, $"seen dead-{round}", vm);
                long seenDead = dead - H.KernelMs(dmesg, $"mark kill-{round}", vm);
                long pause = H.KernelMs(dmesg, $"seen io-{round}", vm) - dead;
                long optimized = H.KernelMs(dmesg, $"seen kill-{round}", vm) - dead;
                long back = H.KernelMs(dmesg, $"seen restart-{round}", vm) - H.KernelMs(dmesg, $"mark restart-{round}", vm);
                Log($"round {round}: the host saw the killed path go {seenDead} ms after the kill was asked; I/O pause (path gone to 50 more writes done " +
                    $"on the survivor): {pause} ms; survivor optimized {optimized} ms after the path went (lease 3 s); restarted gateway back as a live " +
                    $"non-optimized path after {back} ms");
                Log($"  paths after the kill: {Section(s, $"paths-killed-{round}", vm).Output.Replace('\n', '|')}; after the restart: {Section(s, $"paths-restarted-{round}", vm).Output.Replace('\n', '|')}");
            }
            Log("background fio: " + string.Join(" | ", Section(s, "bg-fio", vm).Output.Split('\n').Where(l => l.Contains("IOPS=") || l.Contains("err=")).Select(l => l.Trim())));
        }
        finally
        {
            foreach (var g in gateways)
            {
                if (g == null) continue;
                await g.DisposeAsync();
                Log($"---- {g.Name}:\n{g.Log.Text}");
            }
            File.Delete(fileA);
            File.Delete(fileB);
        }
    }
}
