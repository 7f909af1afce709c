using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>Write-then-read-back of many sizes over every data path: in-capsule, one R2T, several R2Ts,
/// several C2HData PDUs; with and without digests; with and without the C2HData SUCCESS optimization.</summary>
public sealed class DataPathTests(ITestOutputHelper output)
{
    public static TheoryData<bool> Digests => new() { false, true };

    /// <summary>The initiator's own CRC32C (used for every digest it sends and checks) against RFC 3720 vectors.</summary>
    [Fact]
    public void InitiatorCrc32C_KnownVectors()
    {
        Assert.Equal(0xE3069283u, SoftwareCrc32C.Compute("123456789"u8));
        Assert.Equal(0x8A9136AAu, SoftwareCrc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, SoftwareCrc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
    }

    [Theory]
    [MemberData(nameof(Digests))]
    public async Task WriteReadBack_ManySizes(bool digests)
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { HeaderDigest = digests, DataDigest = digests });
        var io = host.Io();
        int inCapsuleLimit = io.InCapsuleDataLimit;
        Assert.Equal(8192, inCapsuleLimit);
        Assert.Equal(128 * 1024, io.MaxH2CData);

        ulong lba = 0;
        int seed = digests ? 1000 : 0;
        foreach (int size in new[] { 512, 4096, 8192, 8192 + 512, 16384, 128 * 1024, 128 * 1024 + 4096, 512 * 1024, 1 << 20 })
        {
            var data = TestData.Random(size, seed++);
            var w = (await host.WriteAsync(0, 1, lba, data)).EnsureSuccess($"write {size}");
            if (size <= inCapsuleLimit)
            {
                Assert.True(w.InCapsule);
                Assert.Equal(0, w.R2TCount);
            }
            else
            {
                Assert.False(w.InCapsule);
                Assert.Equal((size + io.MaxH2CData - 1) / io.MaxH2CData, w.R2TCount);
            }
            var back = new byte[size];
            var r = (await host.ReadAsync(0, 1, lba, back)).EnsureSuccess($"read {size}");
            Assert.Equal((size + 128 * 1024 - 1) / (128 * 1024), r.C2HDataCount);
            Assert.False(r.ViaC2HSuccess);
            Assert.True(data.AsSpan().SequenceEqual(back), $"{size} bytes at LBA {lba} differ");
            lba += (ulong)(size / 512) + 8;
        }

        // The same data read back in pieces and once more as a whole after all the other writes.
        var first = TestData.Random(512, digests ? 1000 : 0);
        var again = new byte[512];
        (await host.ReadAsync(0, 1, 0, again)).EnsureSuccess();
        Assert.Equal(first, again);
    }

    [Fact]
    public async Task WriteForcedThroughR2T_SmallSizes()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);
        foreach (int size in new[] { 512, 4096 })
        {
            var data = TestData.Random(size, size);
            var w = (await host.WriteAsync(0, 1, 100, data, inCapsule: false)).EnsureSuccess();
            Assert.Equal(1, w.R2TCount);
            Assert.Equal(1, w.H2CDataCount);
            var back = new byte[size];
            (await host.ReadAsync(0, 1, 100, back)).EnsureSuccess();
            Assert.Equal(data, back);
        }
    }

    [Theory]
    [MemberData(nameof(Digests))]
    public async Task SmallMaxH2CData_LargeWriteTakesSeveralR2Ts(bool digests)
    {
        await using var target = await TestTarget.StartAsync(output, c => c.Limits.MaxH2CData = 16384);
        await using var host = await target.ConnectWithIoAsync(2, new NvmeTcpHostOptions { HeaderDigest = digests, DataDigest = digests });
        Assert.Equal(16384, host.Io(0).MaxH2CData);

        foreach (var (size, lba) in new[] { (512 * 1024, 0ul), (16384 + 512, 4096ul), (1 << 20, 8192ul) })
        {
            var data = TestData.Random(size, size + (digests ? 1 : 0));
            var w = (await host.WriteAsync(1, 1, lba, data)).EnsureSuccess($"write {size}");
            Assert.Equal((size + 16383) / 16384, w.R2TCount);
            Assert.Equal(w.R2TCount, w.H2CDataCount);
            var back = new byte[size];
            (await host.ReadAsync(0, 1, lba, back)).EnsureSuccess($"read {size}");
            Assert.True(data.AsSpan().SequenceEqual(back), $"{size} bytes at LBA {lba} differ");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SqFlowControlDisabled_ReadsCompleteWithC2HSuccess(bool c2hSuccessOption)
    {
        await using var target = await TestTarget.StartAsync(output, c => c.Limits.C2HSuccess = c2hSuccessOption);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { DisableSqFlowControl = true, HeaderDigest = true });
        var data = TestData.Random(300 * 1024, 5);
        (await host.WriteAsync(0, 1, 64, data)).EnsureSuccess();
        var back = new byte[data.Length];
        var r = (await host.ReadAsync(0, 1, 64, back)).EnsureSuccess();
        Assert.Equal(c2hSuccessOption, r.ViaC2HSuccess);
        Assert.Equal(3, r.C2HDataCount);
        Assert.Equal(data, back);
        // A failing read still gets a CapsuleResp with its status.
        var bad = await host.ReadAsync(0, 1, TestTarget.NamespaceBlocks, new byte[512]);
        Assert.Equal(0x4080, bad.Status);
        Assert.False(bad.ViaC2HSuccess);
    }

    [Fact]
    public async Task FlushWriteZeroesAndDeallocate()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);
        var data = TestData.Random(64 * 1024, 77);
        (await host.WriteAsync(0, 1, 1000, data)).EnsureSuccess();
        (await host.FlushAsync(0, 1)).EnsureSuccess("Flush");
        (await host.FlushAsync(0, 0xFFFFFFFF)).EnsureSuccess("Flush all namespaces");

        // Write Zeroes blocks 8..23 of the range.
        (await host.WriteZeroesAsync(0, 1, 1008, 16)).EnsureSuccess("Write Zeroes");
        Array.Clear(data, 8 * 512, 16 * 512);
        var back = new byte[data.Length];
        (await host.ReadAsync(0, 1, 1000, back)).EnsureSuccess();
        Assert.Equal(data, back);

        // Deallocate two ranges; deallocated blocks read as zeros (DLFEAT).
        (await host.DeallocateAsync(0, 1, [(1000, 4), (1100, 20)])).EnsureSuccess("DSM deallocate");
        Array.Clear(data, 0, 4 * 512);
        Array.Clear(data, 100 * 512, 20 * 512);
        (await host.ReadAsync(0, 1, 1000, back)).EnsureSuccess();
        Assert.Equal(data, back);

        // A DSM range beyond the namespace is rejected and changes nothing.
        var dsmBad = await host.DeallocateAsync(0, 1, [(1020, 4), (TestTarget.NamespaceBlocks - 1, 2)]);
        Assert.Equal(0x4080, dsmBad.Status);
        (await host.ReadAsync(0, 1, 1000, back)).EnsureSuccess();
        Assert.Equal(data, back);
    }
}
