using Nvme.Core.Spec;

namespace Nvme.Core.Storage;

/// <summary>
/// A read, write, zeroing or flush of a backing store failed, with the NVMe status the command completes with
/// (<see cref="FabricQueue"/> answers it; anything else a store throws is Internal Error). Thrown by
/// <see cref="FileBlockStore"/>, never on the success path.
/// </summary>
public sealed class StoreIoException : IOException
{
    public StoreIoException(NvmeStatus status, string message, int errno = 0, Exception? inner = null) : base(message, inner)
    {
        Status = status;
        Errno = errno;
        if (errno != 0) HResult = errno;
    }

    public NvmeStatus Status { get; }

    /// <summary>The errno behind it (0: none, e.g. a read past the end of a file that shrank).</summary>
    public int Errno { get; }

    /// <summary>
    /// The status for a failed system call, as the Linux target maps errnos (drivers/nvme/target/core.c,
    /// errno_to_nvme_status): ENOSPC is Capacity Exceeded with Do Not Retry; so is EDQUOT here (a quota is a
    /// full disk to the host). Anything else (EIO, ...) is Internal Error, which a host may retry.
    /// </summary>
    public static NvmeStatus StatusFor(int errno) => errno switch
    {
        UnixFile.ENOSPC or UnixFile.EDQUOT => NvmeStatus.CapacityExceeded,
        _ => NvmeStatus.InternalError,
    };

    /// <summary>
    /// The errno of an <see cref="IOException"/> from RandomAccess: on Linux .NET puts the raw errno into
    /// HResult for the errors it has no Win32 equivalent for (ENOSPC: HResult 28, "No space left on device");
    /// HResults that are not small positive numbers are not errnos.
    /// </summary>
    public static int ErrnoOf(IOException e) => e is StoreIoException s ? s.Errno : e.HResult is > 0 and < 4096 ? e.HResult : 0;

    /// <summary>Wraps a failure of <paramref name="operation"/> ("write of 4096 bytes at 8192") on <paramref name="store"/>.</summary>
    public static StoreIoException From(IOException e, string operation, string store)
    {
        int errno = ErrnoOf(e);
        return new StoreIoException(StatusFor(errno), $"{operation} on {store} failed: {e.Message}", errno, e);
    }
}
