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

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_conf_get(IntPtr cluster, string option, byte* buffer, nuint length);

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

    // ---- object locks with a lease, extended attributes, blocklisting (gateway ownership of ANA groups)

    [StructLayout(LayoutKind.Sequential)]
    public struct TimeVal { public long Seconds, Microseconds; }

    public const byte LockFlagMayRenew = 1;

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_lock_exclusive(IntPtr ioctx, string oid, string name, string cookie, string description, TimeVal* duration, byte flags);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_lock_shared(IntPtr ioctx, string oid, string name, string cookie, string tag, string description, TimeVal* duration, byte flags);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_unlock(IntPtr ioctx, string oid, string name, string cookie);

    /// <summary>The lockers (count, or -ERANGE with the sizes needed filled in); the lists are '\0'-separated.</summary>
    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint rados_list_lockers(IntPtr ioctx, string oid, string name, out int exclusive, byte* tag, ref nuint tagLength,
        byte* clients, ref nuint clientsLength, byte* cookies, ref nuint cookiesLength, byte* addresses, ref nuint addressesLength);

    /// <summary>The length of the value, or a negative errno (-ENODATA: no such attribute).</summary>
    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_getxattr(IntPtr ioctx, string oid, string name, byte* buffer, nuint length);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_setxattr(IntPtr ioctx, string oid, string name, byte* buffer, nuint length);

    [LibraryImport(Rados, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_blocklist_add(IntPtr cluster, string clientAddress, uint expireSeconds);

    /// <summary>This session's addresses (as a blocklist names them); free the string with free().</summary>
    [LibraryImport(Rados)]
    public static partial int rados_getaddrs(IntPtr cluster, out IntPtr addresses);

    /// <summary>The N of this session's entity name "client.N" (unique per connection).</summary>
    [LibraryImport(Rados)]
    public static partial ulong rados_get_instance_id(IntPtr cluster);

    [LibraryImport(Rbd, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_create2(IntPtr ioctx, string name, ulong size, ulong features, ref int order);

    public const ulong FeatureLayering = 1;

    public const int ENOENT = 2, EIO = 5, EACCES = 13, EEXIST = 17, EINVAL = 22, ENOSPC = 28, EPERM = 1, EBUSY = 16, ERANGE = 34, ENODATA = 61, ETIMEDOUT = 110, EDQUOT = 122,
        ESHUTDOWN = 108, EBLOCKLISTED = 108;

    /// <summary>The errno's text (strerror).</summary>
    public static string Describe(int negativeErrno) => UnixFile.ErrorText(-negativeErrno);
}
