using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Transport.Tcp.Net;

/// <summary>
/// The connection's output: PDUs are written into pooled 64 KiB blocks, and a flush sends every block written
/// since the last one with a single gathered send (sendmsg with an iovec per block). A PipeWriter over a
/// NetworkStream sends block by block: a 128 KiB read answered as C2HData spans three blocks and cost three send
/// system calls, each pushing TCP segments on its own (measured with spdk_nvme_perf, 128 KiB reads at QD8: about
/// three sends per command, and the kernel's send path was most of the target's CPU). Nothing allocates per flush:
/// the send is a reused SocketAsyncEventArgs awaited as a ValueTask.
/// </summary>
internal sealed class SocketPipeWriter : PipeWriter, IExternalSegmentWriter, IObservableSend
{
    private readonly Socket _socket;
    private readonly MemoryPool<byte> _pool;
    private readonly List<IMemoryOwner<byte>> _owners = [];
    private readonly List<ArraySegment<byte>> _segments = [];
    private readonly SendOperation _send = new();
    private IMemoryOwner<byte>? _current;
    private int _currentLength;
    private long _unflushed;
    private long _externalUnflushed;
    private bool _completed;
    private volatile ISendObserver? _observer;

    /// <summary>A wire trace's tap: sees each send's bytes just before they go out.</summary>
    public ISendObserver? Observer { get => _observer; set => _observer = value; }

    public SocketPipeWriter(Socket socket, MemoryPool<byte> pool)
    {
        _socket = socket;
        _pool = pool;
    }

    public override bool CanGetUnflushedBytes => true;
    public override long UnflushedBytes => _unflushed;
    public long ExternalUnflushedBytes => _externalUnflushed;

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        int wanted = Math.Max(sizeHint, 1);
        if (_current is null || _current.Memory.Length - _currentLength < wanted)
        {
            Commit();
            _current = wanted <= _pool.MaxBufferSize ? _pool.Rent() : MemoryPool<byte>.Shared.Rent(wanted);
            _currentLength = 0;
        }
        return _current.Memory[_currentLength..];
    }

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override void Advance(int bytes)
    {
        if (_current is null || bytes < 0 || _currentLength + bytes > _current.Memory.Length) throw new ArgumentOutOfRangeException(nameof(bytes));
        _currentLength += bytes;
        _unflushed += bytes;
    }

    /// <summary>Sends <paramref name="data"/> from where it lies, in order with what is written around it: no copy into
    /// a block. The caller keeps it unchanged until the next flush has completed.</summary>
    public void AppendExternal(ReadOnlyMemory<byte> data)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (data.IsEmpty) return;
        if (!MemoryMarshal.TryGetArray(data, out var array)) throw new ArgumentException("array-backed memory only", nameof(data));
        Commit();
        _segments.Add(array);
        _unflushed += data.Length;
        _externalUnflushed += data.Length;
    }

    /// <summary>The block being written joins the list to send (an empty one goes straight back).</summary>
    private void Commit()
    {
        if (_current is null) return;
        if (_currentLength == 0) _current.Dispose();
        else
        {
            if (!MemoryMarshal.TryGetArray<byte>(_current.Memory, out var array)) throw new InvalidOperationException("pool memory must be array-backed");
            _owners.Add(_current);
            _segments.Add(new ArraySegment<byte>(array.Array!, array.Offset, _currentLength));
        }
        _current = null;
        _currentLength = 0;
    }

    public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_completed) return new FlushResult(isCanceled: false, isCompleted: true);
        Commit();
        if (_segments.Count == 0) return new FlushResult(isCanceled: false, isCompleted: false);
        try
        {
            long total = _unflushed;
            _observer?.Sent(_segments);
            long sent = await _send.SendAsync(_socket, _segments).ConfigureAwait(false);
            // A stream socket's gathered send returns once everything went into the socket (the runtime continues
            // partial sends itself); anything else is a broken connection.
            if (sent != total) throw new IOException($"the connection took {sent} of {total} bytes");
        }
        catch (SocketException e)
        {
            throw new IOException($"send failed: {e.Message}", e);
        }
        finally
        {
            ReleaseSent();
            _unflushed = 0;
            _externalUnflushed = 0;
        }
        return new FlushResult(isCanceled: false, isCompleted: false);
    }

    public override void CancelPendingFlush() { } // the writer loop never cancels a flush; a closing connection is aborted

    /// <summary>What is still buffered goes out first (a last response, a C2HTermReq), as a stream pipe writer does.</summary>
    public override async ValueTask CompleteAsync(Exception? exception = null)
    {
        if (!_completed && exception is null && (_unflushed > 0 || _currentLength > 0))
        {
            try { await FlushAsync().ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException) { /* the peer is gone */ }
        }
        Complete(exception);
    }

    public override void Complete(Exception? exception = null)
    {
        if (_completed) return;
        _completed = true;
        _current?.Dispose();
        _current = null;
        ReleaseSent();
        _send.Dispose();
    }

    /// <summary>The committed blocks go back to the pool and the send list empties (after a send, or unsent at the end).</summary>
    private void ReleaseSent()
    {
        foreach (var owner in _owners) owner.Dispose();
        _owners.Clear();
        _segments.Clear();
    }

    /// <summary>One reusable send: a SocketAsyncEventArgs whose completion is a ValueTask (no allocation per send).</summary>
    private sealed class SendOperation : SocketAsyncEventArgs, IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = false };

        public ValueTask<int> SendAsync(Socket socket, List<ArraySegment<byte>> segments)
        {
            _core.Reset();
            if (segments.Count == 1)
            {
                BufferList = null;
                SetBuffer(segments[0].Array, segments[0].Offset, segments[0].Count);
            }
            else
            {
                SetBuffer(null, 0, 0);
                BufferList = segments; // copied by the setter: the list may change once the send completed
            }
            if (!socket.SendAsync(this)) Finish();
            return new ValueTask<int>(this, _core.Version);
        }

        protected override void OnCompleted(SocketAsyncEventArgs e) => Finish();

        private void Finish()
        {
            if (SocketError == SocketError.Success) _core.SetResult(BytesTransferred);
            else _core.SetException(new SocketException((int)SocketError));
        }

        public int GetResult(short token)
        {
            try { return _core.GetResult(token); }
            finally { BufferList = null; }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
