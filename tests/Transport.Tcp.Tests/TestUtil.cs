using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace Transport.Tcp.Tests;

/// <summary>Builds multi-segment <see cref="ReadOnlySequence{T}"/>s.</summary>
internal sealed class Segment : ReadOnlySequenceSegment<byte>
{
    public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public Segment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new Segment(memory, RunningIndex + Memory.Length);
        Next = next;
        return next;
    }

    /// <summary>Two segments: [0, at) and [at, end). Either may be empty.</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, int at)
    {
        var first = new Segment(data.AsMemory(0, at), 0);
        var last = first.Append(data.AsMemory(at));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>One segment per <paramref name="size"/> bytes (each segment its own array).</summary>
    public static ReadOnlySequence<byte> Chunked(byte[] data, int size)
    {
        if (data.Length == 0) return ReadOnlySequence<byte>.Empty;
        var first = new Segment(data.AsSpan(0, Math.Min(size, data.Length)).ToArray(), 0);
        var last = first;
        for (int o = size; o < data.Length; o += size)
            last = last.Append(data.AsSpan(o, Math.Min(size, data.Length - o)).ToArray());
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}

/// <summary>An IBufferWriter whose fresh memory is full of garbage (0xCC), like a reused pipe buffer: a writer
/// that forgets to clear a reserved field shows up.</summary>
internal sealed class DirtyBufferWriter : IBufferWriter<byte>
{
    private readonly List<byte> _written = [];
    private byte[] _current = [];

    public byte[] WrittenBytes => [.. _written];

    public void Advance(int count) => _written.AddRange(_current.AsSpan(0, count).ToArray());

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        _current = new byte[Math.Max(sizeHint, 64) + 13];
        _current.AsSpan().Fill(0xCC);
        return _current;
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
}

internal sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;
    public PipeWriter Output { get; } = output;
}

internal static class Bytes
{
    public static ushort U16(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt16LittleEndian(s[o..]);
    public static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
    public static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);

    /// <summary>Copy with the header digest recomputed (after a test edits the header).</summary>
    public static byte[] WithHeaderDigest(byte[] pdu)
    {
        var copy = (byte[])pdu.Clone();
        int hlen = copy[2];
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(hlen), Crc32C.Compute(copy.AsSpan(0, hlen)));
        return copy;
    }

    public static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
