namespace Transport.Tcp.Net;

/// <summary>An output that can send a buffer from where it lies instead of copying it into its own blocks (the data
/// of a large read, straight from the command's buffer). The buffer must stay unchanged until the next flush of the
/// output has completed.</summary>
internal interface IExternalSegmentWriter
{
    void AppendExternal(ReadOnlyMemory<byte> data);

    /// <summary>Bytes appended with <see cref="AppendExternal"/> since the last flush (part of UnflushedBytes).</summary>
    long ExternalUnflushedBytes { get; }
}
