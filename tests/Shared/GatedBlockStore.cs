using Nvme.Core.Storage;

namespace Nvme.Testing;

/// <summary>A memory store whose writes can be held at a gate (a request "in flight" for as long as the test
/// wants). It records whether it was used or released while a request was inside it.</summary>
public sealed class GatedBlockStore(long length) : IBlockStore
{
    private static long s_seq;
    private readonly MemoryBlockStore _inner = new(length);
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _active;
    private int _disposed;

    /// <summary>Writes wait at the gate until <see cref="Release"/>.</summary>
    public bool Hold { get; set; }
    public TaskCompletionSource WriteEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public bool Disposed => Volatile.Read(ref _disposed) != 0;
    public int DisposedWhileActive;
    public int UsedAfterDispose;
    public long LastWriteDoneSeq;
    public long DisposedSeq;

    public long Length => _inner.Length;
    public string Description => "gated " + _inner.Description;

    public void Release() => _gate.TrySetResult();

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source)
    {
        Enter();
        try
        {
            if (Hold)
            {
                WriteEntered.TrySetResult();
                await _gate.Task.ConfigureAwait(false);
            }
            _inner.Write(offset, source.Span);
        }
        finally
        {
            Volatile.Write(ref LastWriteDoneSeq, Interlocked.Increment(ref s_seq));
            Interlocked.Decrement(ref _active);
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination)
    {
        Enter();
        try { _inner.Read(offset, destination.Span); }
        finally { Interlocked.Decrement(ref _active); }
        return default;
    }

    /// <summary>Flushes asked of the store.</summary>
    public int Flushes;
    public ValueTask FlushAsync() { Check(); Interlocked.Increment(ref Flushes); return default; }

    public ValueTask ZeroAsync(long offset, long length, bool deallocate)
    {
        Enter();
        try { return _inner.ZeroAsync(offset, length, deallocate); }
        finally { Interlocked.Decrement(ref _active); }
    }

    public void Resize(long newLength) { Check(); _inner.Resize(newLength); }

    private void Enter()
    {
        Check();
        Interlocked.Increment(ref _active);
    }

    private void Check()
    {
        if (Disposed) Interlocked.Increment(ref UsedAfterDispose);
    }

    public void Dispose()
    {
        if (Volatile.Read(ref _active) != 0) Interlocked.Increment(ref DisposedWhileActive);
        DisposedSeq = Interlocked.Increment(ref s_seq);
        Volatile.Write(ref _disposed, 1);
        _inner.Dispose();
    }
}
