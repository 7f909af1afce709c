using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Nvme.Core.Model;
using Nvme.Core.Storage;
using Target.Telemetry;
using Xunit.Abstractions;

namespace Integration.Tests.Telemetry;

/// <summary>The graceful shutdown in process, with a backing store the test holds up: a command taken before the
/// shutdown finishes and is answered within the grace period, a command sent after it is never taken, and when
/// the grace period runs out the connection is closed anyway and the store is closed only once it returns.</summary>
public sealed class ShutdownDrainTests(ITestOutputHelper output)
{
    /// <summary>A memory store whose writes wait for <see cref="Release"/>.</summary>
    private sealed class GatedStore(long length) : IBlockStore
    {
        private readonly MemoryBlockStore _inner = new(length);
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource Entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Disposed;

        public long Length => _inner.Length;
        public string Description => "gated memory";
        public bool IsOpen => !Disposed;
        public void Release() => _gate.TrySetResult();
        public ValueTask ReadAsync(long offset, Memory<byte> destination) => _inner.ReadAsync(offset, destination);
        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source)
        {
            Entered.TrySetResult();
            await _gate.Task.ConfigureAwait(false);
            await _inner.WriteAsync(offset, source).ConfigureAwait(false);
        }
        public ValueTask FlushAsync() => default;
        public ValueTask ZeroAsync(long offset, long length, bool deallocate) => _inner.ZeroAsync(offset, length, deallocate);
        public void Resize(long newLength) => _inner.Resize(newLength);
        public void Dispose() => Disposed = true;
    }

    private static GatedStore AttachGated(TestTarget target)
    {
        var store = new GatedStore(8 << 20);
        target.Host.Target.FindSubsystem(TestTarget.Nqn)!.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(TestTarget.Nqn, 2)));
        return store;
    }

    [Fact]
    public async Task CommandTakenBeforeShutdown_IsAnswered_CommandSentAfter_IsNotTaken()
    {
        await using var target = await TestTarget.StartAsync(output);
        var store = AttachGated(target);
        var host = await target.ConnectWithIoAsync(1);
        try
        {
            var data = TestData.Random(4096, 21);
            var taken = host.WriteAsync(0, 2, 0, data);
            await store.Entered.Task.WaitAsync(TimeSpan.FromSeconds(20)); // in the store, not answered

            var stop = target.Host.StopAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(LifecyclePhase.Stopping, target.Host.Phase);
            Assert.False(target.Host.Readiness.Ready);
            var late = host.WriteAsync(0, 1, 0, data); // sent after the shutdown began: never taken, never answered
            Assert.False(stop.IsCompleted);

            store.Release();
            (await taken.WaitAsync(TimeSpan.FromSeconds(20))).EnsureSuccess("the write taken before the shutdown");
            await stop.WaitAsync(TimeSpan.FromSeconds(30));
            await Assert.ThrowsAsync<NvmeTcpConnectionClosedException>(() => late);
            Assert.Equal(0, target.Host.ConnectionCount);
            Assert.Equal(LifecyclePhase.Stopped, target.Host.Phase);
            Assert.True(store.Disposed);
            var back = new byte[4096];
            await ((IBlockStore)store).ReadAsync(0, back);
            Assert.Equal(data, back);
        }
        finally { await host.DisposeAsync(); }
    }

    [Fact]
    public async Task GracePeriodOver_ClosesTheConnection_StoreClosedOnlyWhenItsCommandReturns()
    {
        await using var target = await TestTarget.StartAsync(output);
        var store = AttachGated(target);
        var host = await target.ConnectWithIoAsync(1);
        try
        {
            var stuck = host.WriteAsync(0, 2, 0, TestData.Random(4096, 22));
            await store.Entered.Task.WaitAsync(TimeSpan.FromSeconds(20));

            await target.Host.StopAsync(TimeSpan.FromSeconds(1)).WaitAsync(TimeSpan.FromSeconds(30));
            await Assert.ThrowsAsync<NvmeTcpConnectionClosedException>(() => stuck); // the host retries it elsewhere
            Assert.Equal(0, target.Host.ConnectionCount);
            Assert.False(store.Disposed); // the command still holds the store

            store.Release();
            Assert.True(await Poll.UntilAsync(() => store.Disposed, TimeSpan.FromSeconds(20)), "the store was not closed after its command returned");
        }
        finally { await host.DisposeAsync(); }
    }
}
