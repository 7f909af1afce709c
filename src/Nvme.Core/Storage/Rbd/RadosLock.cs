using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Nvme.Core.Storage.Rbd;

/// <summary>Who holds a RADOS object lock: the client's entity name ("client.4123"), the cookie it locked with (a
/// gateway's name) and its session address ("127.0.0.1:0/3456789", what a blocklist entry names).</summary>
public sealed record RadosLockHolder(string Client, string Cookie, string Address);

/// <summary>A RADOS call that failed, with its errno (108 ESHUTDOWN: this client is blocklisted).</summary>
public sealed class RadosException(string message, int errno) : StoreException(message)
{
    public int Errno { get; } = errno;
}

/// <summary>
/// An exclusive lock with a lease on one RADOS object (cls_lock, as `rados lock` uses): whoever holds it until the
/// lease runs out, unless renewed; plus the object's extended attributes and the cluster's blocklist, which fence a
/// holder that lost its lease. Uses the shared connection of <see cref="RbdCluster"/>, so a gateway's lock and its
/// RBD I/O are one Ceph client: blocklisting the holder of a lock fences that gateway's writes too. Every call is
/// synchronous (a round trip to an OSD or monitor, bounded by the connection's timeout): call it off the I/O path.
/// </summary>
public sealed unsafe partial class RadosLock : IDisposable
{
    private readonly RbdCluster _cluster;
    private IntPtr _ioctx;

    private RadosLock(RbdCluster cluster, IntPtr ioctx, string pool, string oid, string name, string cookie)
    {
        _cluster = cluster;
        _ioctx = ioctx;
        Pool = pool;
        Object = oid;
        Name = name;
        Cookie = cookie;
        Client = "client." + Librbd.rados_get_instance_id(cluster.Handle);
        Address = SessionAddress(cluster.Handle) ?? "";
    }

    public string Pool { get; }
    public string Object { get; }
    public string Name { get; }
    public string Cookie { get; }
    /// <summary>This session's entity name, e.g. client.4123.</summary>
    public string Client { get; }
    /// <summary>This session's address as a blocklist names it (empty if librados would not say).</summary>
    public string Address { get; }
    public string Description => $"lock {Name} on {Pool}/{Object} ({_cluster.Description})";

    /// <summary>Opens the pool on the shared connection of <paramref name="options"/>. Throws <see cref="StoreException"/>
    /// saying what is wrong (unreachable cluster, refused key, no such pool).</summary>
    public static RadosLock Open(RbdClusterOptions options, string pool, string oid, string name, string cookie)
    {
        var c = RbdCluster.Acquire(options);
        try
        {
            return new RadosLock(c, c.OpenPool(pool), pool, oid, name, cookie);
        }
        catch
        {
            c.Release();
            throw;
        }
    }

    /// <summary>Takes (or, with <paramref name="renew"/>, renews) the lock for <paramref name="lease"/>: 0, -EBUSY when
    /// another (client, cookie) holds it, -EEXIST when this one already does (without renew), or another negative errno
    /// (-ESHUTDOWN: this client is blocklisted).</summary>
    public int TryLock(TimeSpan lease, bool renew, string description)
    {
        var d = Duration(lease);
        return Librbd.rados_lock_exclusive(_ioctx, Object, Name, Cookie, description, &d, renew ? Librbd.LockFlagMayRenew : (byte)0);
    }

    /// <summary>Takes or renews a shared lock named <paramref name="name"/> on the same object (every holder keeps it at
    /// once; what <see cref="Lockers"/> of that name lists is who is alive): 0 or a negative errno.</summary>
    public int LockShared(string name, TimeSpan lease, string description)
    {
        var d = Duration(lease);
        return Librbd.rados_lock_shared(_ioctx, Object, name, Cookie, "", description, &d, Librbd.LockFlagMayRenew);
    }

    /// <summary>Releases the exclusive lock (or the lock <paramref name="name"/>) if this (client, cookie) holds it: 0,
    /// or -ENOENT when it does not.</summary>
    public int Unlock(string? name = null) => Librbd.rados_unlock(_ioctx, Object, name ?? Name, Cookie);

    private static Librbd.TimeVal Duration(TimeSpan lease) =>
        new() { Seconds = (long)Math.Floor(lease.TotalSeconds), Microseconds = lease.Ticks % TimeSpan.TicksPerSecond / 10 };

    /// <summary>The holder of the exclusive lock (null: nobody), or throws <see cref="StoreException"/> when the lockers
    /// cannot be read.</summary>
    public RadosLockHolder? Holder() => Lockers(Name) is { Count: > 0 } l ? l[0] : null;

    /// <summary>Every holder of the lock <paramref name="name"/> whose lease has not run out; throws
    /// <see cref="StoreException"/> when the lockers cannot be read.</summary>
    public IReadOnlyList<RadosLockHolder> Lockers(string name)
    {
        nuint tag = 64, clients = 1024, cookies = 1024, addrs = 2048;
        for (int attempt = 0; attempt < 4; attempt++)
        {
            var tb = new byte[(int)tag]; var cb = new byte[(int)clients]; var kb = new byte[(int)cookies]; var ab = new byte[(int)addrs];
            nint n;
            fixed (byte* t = tb, c = cb, k = kb, a = ab)
                n = Librbd.rados_list_lockers(_ioctx, Object, name, out _, t, ref tag, c, ref clients, k, ref cookies, a, ref addrs);
            if (n == -Librbd.ERANGE) continue; // the sizes needed are filled in
            if (n == -Librbd.ENOENT || n == 0) return [];
            if (n < 0) throw new RadosException($"cannot read the holders of lock {name} on {Pool}/{Object}: {Librbd.Describe((int)n)}", (int)-n);
            var cl = Split(cb, (int)n); var ck = Split(kb, (int)n); var ad = Split(ab, (int)n);
            return [.. Enumerable.Range(0, (int)n).Select(i => new RadosLockHolder(cl[i], ck[i], ad[i]))];
        }
        throw new StoreException($"cannot read the holders of lock {name} on {Pool}/{Object}: the lockers keep growing");
    }

    private static string[] Split(byte[] list, int count)
    {
        var parts = new string[count];
        int start = 0;
        for (int i = 0; i < count; i++)
        {
            int end = start < list.Length ? Array.IndexOf(list, (byte)0, start) : -1;
            if (end < 0) end = list.Length;
            parts[i] = start < list.Length ? Encoding.UTF8.GetString(list, start, end - start) : "";
            start = end + 1;
        }
        return parts;
    }

    /// <summary>An errno's text, for messages.</summary>
    public static string Describe(int negativeErrno) => Librbd.Describe(negativeErrno);

    public const int EBUSY = Librbd.EBUSY, EEXIST = Librbd.EEXIST, ENOENT = Librbd.ENOENT, ESHUTDOWN = Librbd.ESHUTDOWN,
        EACCES = Librbd.EACCES, EPERM = Librbd.EPERM;

    /// <summary>An extended attribute of the object, or null when it (or the object) does not exist.</summary>
    public string? GetAttribute(string name)
    {
        var buffer = new byte[512];
        int rc;
        fixed (byte* b = buffer) rc = Librbd.rados_getxattr(_ioctx, Object, name, b, (nuint)buffer.Length);
        if (rc == -Librbd.ENODATA || rc == -Librbd.ENOENT) return null;
        if (rc < 0) throw new RadosException($"cannot read attribute {name} of {Pool}/{Object}: {Librbd.Describe(rc)}", -rc);
        return Encoding.UTF8.GetString(buffer, 0, rc);
    }

    /// <summary>Sets an extended attribute (creating the object if needed): 0 or a negative errno.</summary>
    public int SetAttribute(string name, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        fixed (byte* b = bytes) return Librbd.rados_setxattr(_ioctx, Object, name, b, (nuint)bytes.Length);
    }

    /// <summary>Blocklists a client address on every OSD for <paramref name="expire"/>: its operations fail from then on
    /// (ESHUTDOWN) and its watches go. 0 or a negative errno (-EACCES/-EPERM: the key lacks the monitor's blocklist permission).</summary>
    public int Blocklist(string address, TimeSpan expire) =>
        Librbd.rados_blocklist_add(_cluster.Handle, address, (uint)Math.Max(1, expire.TotalSeconds));

    /// <summary>Whether <paramref name="address"/> names this session (compared by IP and nonce, whatever the
    /// notation: "v1:127.0.0.1:0/123", "127.0.0.1:0/123", "[v2:...,v1:...]").</summary>
    public bool IsThisSession(string address)
    {
        var mine = Sessions(Address);
        return Sessions(address).Any(mine.Contains);
    }

    private static HashSet<string> Sessions(string address) =>
        [.. SessionPattern().Matches(address).Select(m => m.Groups["ip"].Value + "/" + m.Groups["nonce"].Value)];

    [GeneratedRegex(@"(?<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d+/(?<nonce>\d+)")]
    private static partial Regex SessionPattern();

    private static string? SessionAddress(IntPtr cluster)
    {
        if (Librbd.rados_getaddrs(cluster, out var p) < 0 || p == IntPtr.Zero) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { NativeMemory.Free((void*)p); }
    }

    public void Dispose()
    {
        if (_ioctx == IntPtr.Zero) return;
        Librbd.rados_ioctx_destroy(_ioctx);
        _ioctx = IntPtr.Zero;
        _cluster.Release();
    }
}
