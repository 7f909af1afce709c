using Transport.Tcp.Pdu;

namespace Integration.Tests.Initiator;

/// <summary>The target broke the NVMe/TCP protocol (what the Linux host would log and then drop the connection for).</summary>
public class NvmeTcpProtocolException : Exception
{
    public NvmeTcpProtocolException(string message) : base(message) { }
    public NvmeTcpProtocolException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The target ended the connection with a C2HTermReq.</summary>
public sealed class NvmeTcpTermReqException : NvmeTcpProtocolException
{
    public NvmeTcpTermReqException(FatalErrorStatus status, uint errorInformation)
        : base($"target sent C2HTermReq: FES 0x{(ushort)status:x2} ({status}), FEI 0x{errorInformation:x}")
    {
        Status = status;
        ErrorInformation = errorInformation;
    }

    public FatalErrorStatus Status { get; }
    public uint ErrorInformation { get; }
}

/// <summary>The connection is gone (closed by the target, or by us after a failure).</summary>
public sealed class NvmeTcpConnectionClosedException : Exception
{
    public NvmeTcpConnectionClosedException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A command completed with a non-zero NVMe status where success was required.</summary>
public sealed class NvmeStatusException : Exception
{
    public NvmeStatusException(string what, NvmeCompletion completion)
        : base($"{what} failed: status 0x{completion.Status:x4} (dword0 0x{completion.Dword0:x8})")
    {
        Completion = completion;
    }

    public NvmeCompletion Completion { get; }
    public ushort Status => Completion.Status;
}

/// <summary>DH-HMAC-CHAP failed (the controller sent Failure1, its response did not check out, or the host had no
/// secret when asked), as the Linux host's connect fails with EKEYREJECTED / EACCES.</summary>
public sealed class NvmeAuthenticationException : Exception
{
    public NvmeAuthenticationException(string message, Exception? inner = null) : base(message, inner) { }
    /// <summary>The Failure1 explanation, when the controller sent one.</summary>
    public Nvme.Core.Auth.DhchapFailure? Reason { get; init; }
}
