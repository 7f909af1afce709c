using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;
using Xunit.Abstractions;

namespace Integration.Tests.Program;

/// <summary>
/// The real executable under a hostile host (issue 10, finding 3): discovery connections that flood their admin
/// queue with Get Log Page commands and never read their sockets. Every command is within the queue size the
/// host negotiated; before the bounds each took a 1 MiB buffer outside the data buffer budget (measured with these
/// 4 connections: 52 MiB -> 560 MiB RSS), now the length must match NUMD and admin data shares the budget
/// (52 MiB -> 120 MiB).
/// </summary>
public sealed class ResourceBoundsProgramTests(ITestOutputHelper output)
{
    private const int Connections = 4;
    private const int CommandsPerConnection = 128; // SQSIZE 127 + 1: what the target lets one queue have
    private const int Mib = 1 << 20;
    private const long RssBound = 200L << 20;

    [Fact]
    public async Task AdminGetLogPageFlood_FromHostsThatNeverRead_KeepsRssBounded()
    {
        await using var target = await LiveTarget.StartAsync(null, "--namespace", "memory:16M");
        Assert.False(target.Process.HasExited, "the target did not start:\n" + target.Log);
        long before = target.RssBytes();
        var floods = new List<RawConnection>();
        try
        {
            for (int c = 0; c < Connections; c++)
            {
                // Half the connections send the original exploit (NUMD asks 4 bytes, the SGL 1 MiB), half ask for
                // 1 MiB honestly; each from its own host NQN (they cost nothing to invent).
                var host = $"nqn.2014-08.org.nvmexpress:uuid:{Guid.NewGuid()}";
                floods.Add(await FloodAsync(target.Endpoint, host, numdBytes: c % 2 == 0 ? 4 : Mib));
            }
            long peak = await SettledRssAsync(target);
            output.WriteLine($"RSS before the flood {before >> 20} MiB, with {Connections} flooding connections x {CommandsPerConnection} " +
                $"Get Log Page commands of 1 MiB: {peak >> 20} MiB (bound {RssBound >> 20} MiB)");
            Assert.False(target.Process.HasExited, "the target died under the flood:\n" + target.Log);
            Assert.True(peak < RssBound, $"RSS grew from {before >> 20} MiB to {peak >> 20} MiB under the flood (bound {RssBound >> 20} MiB)");

            // The target still serves a well-behaved host meanwhile.
            await using var good = await NvmeTcpHost.ConnectAsync(target.Endpoint, "nqn.2026-01.io.nvmetcptarget:default");
            var id = await good.IdentifyAsync(IdentifyCns.Controller);
            Assert.Equal("nqn.2026-01.io.nvmetcptarget:default", SpecText.ReadNulTerminated(id.AsSpan(768, 256)));
        }
        finally
        {
            foreach (var f in floods) await f.DisposeAsync();
        }
    }

    /// <summary>ICReq, Connect to the discovery subsystem with SQSIZE 127, CC.EN; then 128 Get Log Page commands
    /// with a 1 MiB SGL in one write, and nothing is ever read again.</summary>
    private static async Task<RawConnection> FloodAsync(IPEndPoint endpoint, string hostNqn, int numdBytes)
    {
        var raw = await RawConnection.OpenAsync(endpoint);
        try
        {
            await raw.HandshakeAsync();
            var data = new byte[ConnectData.Size];
            Guid.NewGuid().TryWriteBytes(data.AsSpan(0, 16), bigEndian: true, out _);
            BitConverter.TryWriteBytes(data.AsSpan(ConnectData.CntlidOffset, 2), (ushort)0xFFFF);
            Encoding.ASCII.GetBytes(WellKnown.DiscoveryNqn).CopyTo(data, ConnectData.SubNqnOffset);
            Encoding.ASCII.GetBytes(hostNqn).CopyTo(data, ConnectData.HostNqnOffset);
            var connect = Sqe.Fabrics(FabricsType.Connect) with { CommandId = 1, Cdw11 = CommandsPerConnection - 1 };
            connect.Sgl = new SglDescriptor { Length = ConnectData.Size, Identifier = SglDescriptor.InCapsuleOffset };
            await raw.SendAsync(PduBuilder.CapsuleCmd(connect, data, false, false));
            ExpectSuccess(await raw.ReadPduAsync(), "Connect");
            var enable = Sqe.PropertySet(PropertyOffset.Cc, NvmeTcpHost.CcEnableValue) with { CommandId = 2 };
            await raw.SendAsync(PduBuilder.CapsuleCmd(enable, default, false, false));
            ExpectSuccess(await raw.ReadPduAsync(), "Property Set CC.EN");

            using var flood = new MemoryStream();
            for (int i = 0; i < CommandsPerConnection; i++)
            {
                var sqe = Sqe.GetLogPage(LogPageId.Discovery, numdBytes, nsid: 0) with { CommandId = (ushort)(0x100 + i) };
                sqe.Sgl = new SglDescriptor { Length = Mib, Identifier = SglDescriptor.TransportDataBlock };
                flood.Write(PduBuilder.CapsuleCmd(sqe, default, false, false));
            }
            await raw.SendAsync(flood.ToArray());
            return raw;
        }
        catch
        {
            await raw.DisposeAsync();
            throw;
        }
    }

    private static void ExpectSuccess(ReceivedPduBytes? pdu, string what)
    {
        Assert.True(pdu is { Type: PduType.CapsuleResp }, $"{what}: expected a CapsuleResp, got {pdu?.ToString() ?? "a close"}");
        var cqe = MemoryMarshal.Read<CompletionQueueEntry>(pdu!.Header.AsSpan(CommonHeader.Size));
        Assert.True(cqe.Status == NvmeStatus.Success, $"{what} failed: {cqe.Status}");
    }

    /// <summary>Once the target has read everything the flooding hosts sent (their sockets' receive queues on the
    /// target side are empty) and its RSS stopped moving (4 samples 0.5 s apart within 4 MiB), the highest RSS seen.</summary>
    private static async Task<long> SettledRssAsync(LiveTarget target)
    {
        var samples = new List<long>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline && !target.Process.HasExited)
        {
            samples.Add(target.RssBytes());
            bool drained = ProcNetTcp.Sockets().Where(s => s.Local == target.Port && s.State == ProcNetTcp.Established).All(s => s.RxQueue == 0);
            var last = samples.TakeLast(4).ToList();
            if (drained && last.Count == 4 && last.Max() - last.Min() < 4 << 20) break;
            await Task.Delay(500);
        }
        return samples.Count == 0 ? 0 : samples.Max();
    }
}
