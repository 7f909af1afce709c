using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;
using Xunit.Abstractions;

namespace Transport.Tcp.Tests;

[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public sealed class AllocationCollection;

/// <summary>
/// Steady-state I/O allocates nothing: requests and buffers are pooled per queue. Measured with
/// GC.GetTotalAllocatedBytes over thousands of 4 KiB writes (in-capsule) and reads at queue depth 32,
/// with a client side that itself allocates nothing. Runs alone (no other test allocating meanwhile).
/// </summary>
[Collection(nameof(AllocationCollection))]
public sealed class NvmeTcpAllocationTests(ITestOutputHelper output)
{
    private const int Depth = 32;

    [Fact]
    public async Task SteadyStateReadsAndWrites_AllocateNothingPerIo()
    {
        using var f = new PipeFixture();
        var (admin, io) = await NvmeTcpDataPathTests.ConnectAsync(f);
        var commands = new byte[Depth][];
        var data = new byte[4096];
        new Random(7).NextBytes(data);
        for (int i = 0; i < Depth; i++)
        {
            ushort cid = (ushort)(0x100 + i);
            var sqe = NvmeTcpDataPathTests.Rw(i % 2 == 0 ? IoOpcode.Write : IoOpcode.Read, cid, (ulong)(i / 2) * 8, 8);
            if (i % 2 == 0)
            {
                sqe.Sgl.Identifier = SglDescriptor.InCapsuleOffset; // 4 KiB write in the capsule
                commands[i] = NvmeTcpDataPathTests.Capsule(sqe, data);
            }
            else commands[i] = NvmeTcpDataPathTests.Capsule(sqe);
        }

        await RunBatchesAsync(io.ToTarget, io.FromTarget, commands, 300); // warm-up: JIT, pools, tiering
        // Three measured rounds; the best one counts. A real per-I/O allocation shows in every round, while
        // one-off background work (the thread pool creating a thread on a loaded machine) does not.
        const int Batches = 3000;
        double perIo = double.MaxValue;
        long allocated = 0;
        for (int round = 0; round < 3; round++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            await RunBatchesAsync(io.ToTarget, io.FromTarget, commands, Batches);
            long bytes = GC.GetTotalAllocatedBytes(precise: true) - before;
            double each = (double)bytes / (Batches * Depth);
            output.WriteLine($"round {round}: {Batches * Depth} I/Os (4 KiB, QD{Depth}, half writes in-capsule, half reads): {bytes} bytes allocated, {each:F2} bytes per I/O");
            if (each < perIo) (perIo, allocated) = (each, bytes);
        }
        // The smallest object is 24 bytes: an average below 1 byte means no allocation per I/O. Debug builds
        // compile async state machines as classes, one per call; the property holds for optimized builds,
        // which is what ships and what ./test.sh runs.
        bool optimized = !(typeof(NvmeTcpQueue).Assembly.GetCustomAttributes(typeof(System.Diagnostics.DebuggableAttribute), false)
            .OfType<System.Diagnostics.DebuggableAttribute>().FirstOrDefault()?.IsJITOptimizerDisabled ?? false);
        double bound = optimized ? 1.0 : 512.0;
        Assert.True(perIo < bound, $"{perIo:F2} bytes allocated per I/O in steady state ({allocated} bytes in total, optimized build: {optimized})");

        await NvmeTcpDataPathTests.CloseAsync(f, admin, io);
    }

    /// <summary>Sends all commands, then waits for as many CapsuleResps (skipping C2HData), per batch.</summary>
    private static async Task RunBatchesAsync(PipeWriter toTarget, PipeReader fromTarget, byte[][] commands, int batches)
    {
        for (int b = 0; b < batches; b++)
        {
            foreach (var c in commands)
            {
                c.CopyTo(toTarget.GetSpan(c.Length));
                toTarget.Advance(c.Length);
            }
            await toTarget.FlushAsync();
            int responses = 0;
            while (responses < commands.Length)
            {
                var result = await fromTarget.ReadAsync();
                var buffer = result.Buffer;
                responses += CountResponses(ref buffer);
                fromTarget.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted) throw new InvalidOperationException("target closed the connection");
            }
        }
    }

    private static int CountResponses(ref ReadOnlySequence<byte> buffer)
    {
        int n = 0;
        Span<byte> ch = stackalloc byte[8];
        Span<byte> cqe = stackalloc byte[2];
        while (buffer.Length >= 8)
        {
            buffer.Slice(0, 8).CopyTo(ch);
            uint plen = BinaryPrimitives.ReadUInt32LittleEndian(ch[4..]);
            if (buffer.Length < plen) break;
            if ((PduType)ch[0] == PduType.CapsuleResp)
            {
                buffer.Slice(8 + 14, 2).CopyTo(cqe);
                if (BinaryPrimitives.ReadUInt16LittleEndian(cqe) >> 1 != 0) throw new InvalidOperationException("command failed");
                n++;
            }
            buffer = buffer.Slice(plen);
        }
        return n;
    }
}
