using Nvme.Core;
using Nvme.Core.Model;

namespace Nvme.Core.Tests;

public class DataBufferPoolTests
{
    private sealed class Waiter : IDataBufferWaiter
    {
        public readonly List<NvmeRequest> Granted = [];
        public void BufferGranted(NvmeRequest request) => Granted.Add(request);
    }

    private static NvmeRequest Request(int length) => new() { DataLength = length };

    // MDTS 8 = 1 MiB commands; budget 1 MiB.
    private static DataBufferPool Pool() => new(new TargetLimits { Mdts = 8, DataBufferBudget = 1 << 20 });

    [Fact]
    public void The_budget_bounds_the_buffers_and_waiters_are_served_in_order_as_buffers_come_back()
    {
        var pool = Pool();
        var w = new Waiter();
        var held = Enumerable.Range(0, 8).Select(_ => Request(128 * 1024)).ToList();
        Assert.All(held, r => Assert.True(pool.TryRent(r, w)));
        Assert.True(held[0].Data.Length == 128 * 1024);
        var late1 = Request(100 * 1024);  // same 128 KiB class
        var late2 = Request(64 * 1024);
        Assert.False(pool.TryRent(late1, w));
        Assert.False(pool.TryRent(late2, w));
        Assert.Equal(2, pool.Waiting);
        Assert.Equal(1 << 20, pool.CreatedBytes);

        held[3].Reset();                 // back to the pool: the first waiter gets it
        Assert.Equal([late1], w.Granted);
        Assert.Equal(100 * 1024, late1.Data.Length);
        held[4].Reset();                 // free 128 KiB buffer, waiter wants 64 KiB: the free one is dropped to make room
        Assert.Equal([late1, late2], w.Granted);
        Assert.Equal(64 * 1024, late2.Data.Length);
        Assert.Equal(7 * 128 * 1024 + 64 * 1024, pool.CreatedBytes);
        held[5].ReleaseBuffers();        // kept for reuse, within the budget
        Assert.Equal(7 * 128 * 1024 + 64 * 1024, pool.CreatedBytes);
        Assert.Equal(7, pool.InUse);
        Assert.Equal(0, pool.Waiting);
    }

    [Fact]
    public void A_request_never_overtakes_a_waiter_and_a_cancelled_wait_is_never_granted()
    {
        var pool = Pool();
        var w = new Waiter();
        var big = Request(1 << 20);
        Assert.True(pool.TryRent(big, w));
        var first = Request(256 * 1024);
        Assert.False(pool.TryRent(first, w));
        Assert.True(pool.CancelWait(first));
        Assert.False(pool.CancelWait(first));
        var second = Request(256 * 1024);
        Assert.False(pool.TryRent(second, w));
        big.Reset();                     // the 1 MiB buffer is dropped to make room: second is served, first never
        Assert.Equal([second], w.Granted);
        var third = Request(256 * 1024);
        Assert.True(pool.TryRent(third, w)); // room for 4 x 256 KiB
        Assert.Equal(2, pool.InUse);
        Assert.True(pool.CreatedBytes <= 1 << 20);
    }
}
