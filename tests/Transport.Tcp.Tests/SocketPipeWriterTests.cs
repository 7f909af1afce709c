using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Transport.Tcp.Net;

namespace Transport.Tcp.Tests;

/// <summary>The connection's output over a real loopback socket: everything written and appended between two
/// flushes arrives in order, in one gathered send per flush; external buffers are sent from where they lie; what
/// is still buffered goes out at completion; a broken connection is an IOException.</summary>
public sealed class SocketPipeWriterTests
{
    private static async Task<(Socket Client, Socket Server)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        return (client, await accept);
    }

    private static async Task<byte[]> ReceiveAsync(Socket s, int length)
    {
        var buffer = new byte[length];
        int got = 0;
        while (got < length)
        {
            int n = await s.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
            if (n == 0) throw new EndOfStreamException($"closed after {got} of {length} bytes");
            got += n;
        }
        return buffer;
    }

    [Fact]
    public async Task WrittenBlocksAndExternalBuffers_ArriveInOrder()
    {
        var (client, server) = await PairAsync();
        using (client)
        using (server)
        {
            var pool = new BlockMemoryPool(64 * 1024);
            var w = new SocketPipeWriter(server, pool);
            var rnd = new Random(4);
            var expected = new List<byte>();
            for (int round = 0; round < 3; round++)
            {
                var small = new byte[24];
                rnd.NextBytes(small);
                w.Write(small.AsSpan());                                  // a header...
                var big = new byte[150_000];
                rnd.NextBytes(big);
                ((IExternalSegmentWriter)w).AppendExternal(big);  // ...data from where it lies...
                var spill = new byte[100_000];
                rnd.NextBytes(spill);
                w.Write(spill.AsSpan());                                  // ...and more than one block written after it
                expected.AddRange(small);
                expected.AddRange(big);
                expected.AddRange(spill);
                Assert.Equal(24 + 150_000 + 100_000, w.UnflushedBytes);
                Assert.Equal(150_000, w.ExternalUnflushedBytes); // what the writer's flush rule leaves out of its 32 KiB
                var r = await w.FlushAsync();
                Assert.False(r.IsCompleted);
                Assert.Equal(0, w.UnflushedBytes);
                Assert.Equal(0, w.ExternalUnflushedBytes);
            }
            Assert.Equal(expected.ToArray(), await ReceiveAsync(client, expected.Count));
            Assert.True(pool.BlockCount <= 4, $"blocks are reused after each flush ({pool.BlockCount} created)");

            // What is written but not flushed goes out at completion.
            w.Write(new byte[] { 1, 2, 3 }.AsSpan());
            await w.CompleteAsync();
            Assert.Equal(new byte[] { 1, 2, 3 }, await ReceiveAsync(client, 3));
        }
    }

    [Fact]
    public async Task ABrokenConnection_IsAnIOException()
    {
        var (client, server) = await PairAsync();
        using (server)
        {
            client.LingerState = new LingerOption(true, 0);
            client.Dispose(); // reset
            var w = new SocketPipeWriter(server, new BlockMemoryPool(64 * 1024));
            await Assert.ThrowsAsync<IOException>(async () =>
            {
                // The first send may still be taken by the kernel; a later one meets the reset.
                for (int i = 0; i < 100; i++)
                {
                    w.Write(new byte[64 * 1024].AsSpan());
                    await w.FlushAsync();
                    await Task.Delay(10);
                }
            });
            w.Complete();
        }
    }
}
