using System.Runtime.InteropServices;

namespace Nvme.Core.Storage.Rbd;

/// <summary>The C APIs of librados (librados.so.2) and librbd (librbd.so.1), Ceph 16.2 (Debian's librados2 and
/// librbd1): only what the RBD store uses. Every call returns 0 or a negative errno unless noted.</summary>
internal static unsafe partial class Librbd
{
    private const string Rados = "librados.so.2", Rbd = "librbd.so.1";

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_create(out IntPtr cluster, string? id);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_conf_read_file(IntPtr cluster, string? path);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_conf_set(IntPtr cluster, string option, string value);

    [LibraryImport(Rados)]
    public static partial int rados_connect(IntPtr cluster);

    [LibraryImport(Rados)]
    public static partial void rados_shutdown(IntPtr cluster);

    /// <summary>Cluster-wide usage (kb, kb_used, kb_avail, num_objects): a monitor round trip.</summary>
    [LibraryImport(Rados)]
    public static partial int rados_cluster_stat(IntPtr cluster, ulong* stat);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_ioctx_create(IntPtr cluster, string pool, out IntPtr ioctx);

    [LibraryImport(Rados)]
    public static partial void rados_ioctx_destroy(IntPtr ioctx);

    [LibraryImport(Rbd, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_create(IntPtr ioctx, string name, ulong size, ref int order);

    [LibraryImport(Rbd, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_open(IntPtr ioctx, string name, out IntPtr image, string? snapshot);

    [LibraryImport(Rbd)]
    public static partial int rbd_close(IntPtr image);

    [LibraryImport(Rbd)]
    public static partial int rbd_get_size(IntPtr image, out ulong size);

    [LibraryImport(Rbd)]
    public static partial int rbd_resize(IntPtr image, ulong size);

    [LibraryImport(Rbd)]
    public static partial int rbd_aio_create_completion(IntPtr arg, delegate* unmanaged<IntPtr, IntPtr, void> callback, out IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial int rbd_aio_read(IntPtr image, ulong offset, nuint length, byte* buffer, IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial int rbd_aio_write(IntPtr image, ulong offset, nuint length, byte* buffer, IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial int rbd_aio_flush(IntPtr image, IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial int rbd_aio_discard(IntPtr image, ulong offset, ulong length, IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial int rbd_aio_write_zeroes(IntPtr image, ulong offset, nuint length, IntPtr completion, int zeroFlags, int opFlags);

    /// <summary>The operation's result: bytes for a read or write, 0 or a negative errno.</summary>
    [LibraryImport(Rbd)]
    public static partial nint rbd_aio_get_return_value(IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial void rbd_aio_release(IntPtr completion);

    [LibraryImport(Rbd)]
    public static partial int rbd_update_watch(IntPtr image, out ulong handle, delegate* unmanaged<IntPtr, void> callback, IntPtr arg);

    [LibraryImport(Rbd)]
    public static partial int rbd_update_unwatch(IntPtr image, ulong handle);

    public const int ENOENT = 2, EIO = 5, EACCES = 13, EEXIST = 17, EINVAL = 22, ENOSPC = 28, EPERM = 1, ETIMEDOUT = 110, EDQUOT = 122,
        ESHUTDOWN = 108, EBLOCKLISTED = 108;

    /// <summary>The errno's text (strerror).</summary>
    public static string Describe(int negativeErrno) => UnixFile.ErrorText(-negativeErrno);
}
