using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.Telemetry;

/// <summary>
/// The real executable with a file-backed namespace: SIGTERM while a host writes at full speed. Every write the
/// host saw acknowledged is in the file afterwards, every write of a slot that executed was acknowledged (the
/// file holds exactly the last acknowledged data of each slot), the connections drained within the grace
/// period, the namespace was flushed, and the process exited 0.
/// </summary>
public sealed class GracefulShutdownTests(ITestOutputHelper output)
{
    private const string Nqn = "nqn.2026-01.io.nvmetcptarget:default";
    private const int SlotBlocks = 32;          // 16 KiB per slot
    private const int Writers = 8, SlotsPerWriter = 100;

    [Fact]
    public async Task Sigterm_FinishesTakenCommands_FlushesTheFile_AndExits0()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-shutdown-");
        var image = Path.Combine(dir.FullName, "disk.img");
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var psi = TargetProcess.StartInfo(null, "--listen", $"127.0.0.1:{port}", "--api", "off", "--probes", "off", "--namespace", $"file:{image}:16M",
            "--storage-dir", dir.FullName, "--shutdown-grace", "20");
        using var p = Process.Start(psi)!;
        var log = new ProcessLog(p);
        try
        {
            await log.WaitForAsync("nvme connect -t tcp", TimeSpan.FromSeconds(60));
            var lastAcked = new ConcurrentDictionary<int, byte[]>();
            int acknowledgedAfterStart = 0, failedWithStatus = 0;
            var host = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), Nqn);
            try
            {
                await host.CreateIoQueuesAsync(2);
                // 37 acknowledged writes first (16 KiB: data through R2T/H2CData).
                for (int slot = 0; slot < 37; slot++)
                {
                    var data = Data(slot, 0, SlotBlocks * 512);
                    (await host.WriteAsync(slot % 2, 1, (ulong)(slot * SlotBlocks), data)).EnsureSuccess("write");
                    lastAcked[slot] = data;
                }

                // Then writers that overwrite their own slots until the connection goes away: 4 KiB in the
                // capsule and 16 KiB through R2T, alternately, 8 at a time.
                var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
                {
                    for (int round = 1; ; round++)
                    {
                        int slot = 37 + w + Writers * (round % SlotsPerWriter);
                        var data = Data(slot, round, round % 2 == 0 ? 4096 : SlotBlocks * 512);
                        NvmeCompletion c;
                        try { c = await host.WriteAsync(w % 2, 1, (ulong)(slot * SlotBlocks), data); }
                        catch (NvmeTcpConnectionClosedException) { return; }
                        if (!c.IsSuccess) { Interlocked.Increment(ref failedWithStatus); return; }
                        // Only the first 4 KiB changed for a short write: keep the slot's full expected image.
                        var image = lastAcked.TryGetValue(slot, out var old) ? (byte[])old.Clone() : new byte[SlotBlocks * 512];
                        data.CopyTo(image, 0);
                        lastAcked[slot] = image;
                        Interlocked.Increment(ref acknowledgedAfterStart);
                    }
                })).ToList();
                Assert.True(await Poll.UntilAsync(() => Volatile.Read(ref acknowledgedAfterStart) >= 200, TimeSpan.FromSeconds(30)),
                    "the writers made no progress");

                using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) await kill.WaitForExitAsync();
                await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60)); // they end when the target closes the connections
            }
            finally { await host.DisposeAsync(); }

            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60))) await p.WaitForExitAsync(cts.Token);
            var text = log.Text;
            output.WriteLine(text);
            Assert.Equal(0, p.ExitCode);
            Assert.Equal(0, failedWithStatus); // nothing taken was failed: commands are answered or left for the host
            Assert.Contains("Shutting down (SIGTERM)", text);
            Assert.Contains("Shutdown: no longer accepting connections or new commands; 3 connection(s)", text);
            Assert.Contains("Shutdown: every connection answered its commands and closed", text); // within the grace period
            Assert.Contains($"Shutdown: flushed and closed namespace 1 of {Nqn} (file {image})", text);
            Assert.Contains("Stopped", text);

            // The file holds exactly the last acknowledged data of every slot.
            using var file = File.OpenRead(image);
            var actual = new byte[SlotBlocks * 512];
            foreach (var (slot, expected) in lastAcked)
            {
                file.Position = (long)slot * SlotBlocks * 512;
                file.ReadExactly(actual);
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"slot {slot}: the file does not hold the last acknowledged write");
            }
            output.WriteLine($"{lastAcked.Count} slots checked, {acknowledgedAfterStart} writes acknowledged after the first 37");
        }
        finally
        {
            if (!p.HasExited) p.Kill(true);
            dir.Delete(recursive: true);
        }
    }

    private static byte[] Data(int slot, int round, int length)
    {
        var b = new byte[length];
        new Random(slot * 100_003 + round).NextBytes(b);
        return b;
    }
}
