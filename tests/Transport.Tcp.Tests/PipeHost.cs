using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging.Abstractions;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Storage;

namespace Transport.Tcp.Tests;

/// <summary>A target with the subsystem the captured Linux host connects to (NSID 1: 64 MiB, 512-byte blocks).</summary>
internal sealed class PipeFixture : IDisposable
{
    public const string Nqn = "nqn.2016-06.io.spdk:cnode1";

    public PipeFixture(TargetLimits? limits = null)
    {
        Target = new NvmeTarget(limits, keepAliveScanInterval: Timeout.InfiniteTimeSpan);
        Subsystem = new Subsystem(Nqn, allowAnyHost: true);
        Store = new MemoryBlockStore(64 << 20);
        Subsystem.AttachNamespace(new Namespace(1, Store, 512, NamespaceIds.Derive(Nqn, 1)));
        Target.AddSubsystem(Subsystem);
    }

    public NvmeTarget Target { get; }
    public Subsystem Subsystem { get; }
    public MemoryBlockStore Store { get; }
    public void Dispose() => Target.Dispose();
}

/// <summary>One connection over in-memory pipes: the test is the host on the other side.</summary>
internal sealed class PipeHost
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly Pipe _toTarget = new(PooledMemoryPool.PipeOptions);
    private readonly Pipe _fromTarget = new(PooledMemoryPool.PipeOptions);
    private ushort _cid = 0x40;

    public PipeHost(NvmeTarget target, TcpTransportOptions? options = null, TcpTransportMetrics? metrics = null, string peer = "pipe")
    {
        Queue = new NvmeTcpQueue(target, new DuplexPipe(_toTarget.Reader, _fromTarget.Writer), options ?? new TcpTransportOptions(),
            NullLogger.Instance, peer, metrics: metrics);
        Run = Queue.RunAsync();
    }

    public NvmeTcpQueue Queue { get; }
    public Task Run { get; }
    public ushort NextCid() => _cid++;
    public PipeWriter ToTarget => _toTarget.Writer;
    public PipeReader FromTarget => _fromTarget.Reader;

    public async Task SendAsync(params byte[][] pdus)
    {
        foreach (var p in pdus) await _toTarget.Writer.WriteAsync(p);
    }

    /// <summary>Sends <paramref name="bytes"/> in pieces of <paramref name="chunk"/> bytes (one flush each).</summary>
    public async Task SendAsync(byte[] bytes, int chunk)
    {
        for (int o = 0; o < bytes.Length; o += chunk)
            await _toTarget.Writer.WriteAsync(bytes.AsMemory(o, Math.Min(chunk, bytes.Length - o)));
    }

    /// <summary>The next PDU the target sent, or null when the target closed its output.</summary>
    public async Task<byte[]?> ReceiveAsync()
    {
        using var cts = new CancellationTokenSource(Wait);
        var reader = _fromTarget.Reader;
        while (true)
        {
            var result = await reader.ReadAsync(cts.Token);
            var buffer = result.Buffer;
            if (buffer.Length >= 8)
            {
                long plen = BinaryPrimitives.ReadUInt32LittleEndian(buffer.Slice(4, 4).ToArray());
                if (buffer.Length >= plen)
                {
                    var pdu = buffer.Slice(0, plen).ToArray();
                    reader.AdvanceTo(buffer.GetPosition(plen));
                    return pdu;
                }
            }
            if (result.IsCompleted)
            {
                reader.AdvanceTo(buffer.End);
                Assert.True(buffer.IsEmpty, $"target closed its output in the middle of a PDU ({buffer.Length} bytes)");
                return null;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async Task<byte[]> ReceivePduAsync()
    {
        var pdu = await ReceiveAsync();
        Assert.NotNull(pdu);
        return pdu;
    }

    /// <summary>Asserts the target sends nothing more and closes its output, and the connection task ends.</summary>
    public async Task ExpectClosedAsync()
    {
        Assert.Null(await ReceiveAsync());
        await Run.WaitAsync(Wait);
    }

    /// <summary>The host closes; the target must have nothing left to send.</summary>
    public async Task CloseAsync()
    {
        await _toTarget.Writer.CompleteAsync();
        await ExpectClosedAsync();
    }

    /// <summary>The host closes without reading what the target still sends (e.g. answers to parked commands).</summary>
    public async Task DrainAndCloseAsync()
    {
        await _toTarget.Writer.CompleteAsync();
        while (await ReceiveAsync() != null) { }
        await Run.WaitAsync(Wait);
    }
}
