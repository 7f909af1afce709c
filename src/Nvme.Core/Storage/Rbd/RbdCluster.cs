namespace Nvme.Core.Storage.Rbd;

/// <summary>How to reach a Ceph cluster: its configuration file (null: librados' default, $CEPH_CONF or
/// /etc/ceph/ceph.conf), the client id ("admin" for client.admin) and a keyring (null: the configuration's).</summary>
public sealed record RbdClusterOptions(string? CephConf = null, string? ClientId = null, string? Keyring = null)
{
    /// <summary>How long connecting (and each monitor operation) may take before the cluster counts as unreachable.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// One connection (librados cluster handle) per cluster, shared by every RBD namespace on it and counted: the last
/// image closed shuts it down. Connecting is synchronous and bounded by <see cref="RbdClusterOptions.ConnectTimeout"/>.
/// </summary>
public sealed class RbdCluster
{
    private static readonly Lock s_gate = new();
    private static readonly Dictionary<RbdClusterOptions, RbdCluster> s_open = [];

    private readonly RbdClusterOptions _options;
    private IntPtr _handle;
    private int _users;

    private RbdCluster(RbdClusterOptions options, IntPtr handle)
    {
        _options = options;
        _handle = handle;
        _probe = new Thread(ProbeLoop) { IsBackground = true, Name = "rbd cluster probe" };
        _probe.Start();
    }

    /// <summary>How often the connection is checked (a monitor round trip, bounded by the connect timeout).</summary>
    public static TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(5);

    private readonly Thread _probe;
    private readonly ManualResetEventSlim _stop = new();
    private volatile string? _problem;

    /// <summary>Null while the cluster answers; otherwise why not (the last probe failed): readiness reports it.</summary>
    public string? Problem => _problem;

    /// <summary>Checks the connection every <see cref="ProbeInterval"/> on a thread of its own (the call blocks up to
    /// the monitor timeout), so an unreachable cluster shows in /readyz without any I/O having to fail first.</summary>
    private unsafe void ProbeLoop()
    {
        ulong* stat = stackalloc ulong[4];
        while (!_stop.Wait(ProbeInterval))
        {
            IntPtr h;
            lock (s_gate) h = _handle;
            if (h == IntPtr.Zero) return;
            int rc = Librbd.rados_cluster_stat(h, stat);
            _problem = rc == 0 ? null : $"the Ceph cluster ({Description}) does not answer: {Librbd.Describe(rc)}";
        }
    }

    internal IntPtr Handle => _handle;

    public RbdClusterOptions Options => _options;

    /// <summary>An I/O context on <paramref name="pool"/> (destroy it with rados_ioctx_destroy). Throws
    /// <see cref="StoreException"/> naming a pool that does not exist.</summary>
    internal IntPtr OpenPool(string pool)
    {
        int rc = Librbd.rados_ioctx_create(_handle, pool, out var io);
        if (rc < 0)
            throw new StoreException(rc == -Librbd.ENOENT ? $"Ceph pool '{pool}' does not exist ({Description})" : $"cannot open Ceph pool '{pool}': {Librbd.Describe(rc)}");
        return io;
    }

    /// <summary>A librados/librbd option as this connection has it (null: no such option).</summary>
    public unsafe string? GetOption(string name)
    {
        var buffer = new byte[4096];
        int rc;
        fixed (byte* b = buffer) rc = Librbd.rados_conf_get(_handle, name, b, (nuint)buffer.Length);
        if (rc < 0) return null;
        int end = Array.IndexOf(buffer, (byte)0);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, end < 0 ? buffer.Length : end);
    }

    /// <summary>Who the cluster is, for messages ("client.admin of /etc/ceph/ceph.conf").</summary>
    public string Description => $"client.{_options.ClientId ?? "admin"} of {ConfName(_options)}";

    /// <summary>The configuration file librados reads for <paramref name="o"/>, for messages: the given one, else
    /// $CEPH_CONF's, else /etc/ceph/ceph.conf.</summary>
    internal static string ConfName(RbdClusterOptions o) =>
        o.CephConf ?? (Environment.GetEnvironmentVariable("CEPH_CONF") is { Length: > 0 } env ? $"{env} ($CEPH_CONF)" : "/etc/ceph/ceph.conf");

    /// <summary>The shared connection to the cluster <paramref name="options"/> name, connecting when there is none
    /// (release it with <see cref="Release"/>). Throws <see cref="StoreException"/> saying what went wrong.</summary>
    public static RbdCluster Acquire(RbdClusterOptions options)
    {
        lock (s_gate)
        {
            if (!s_open.TryGetValue(options, out var c))
            {
                c = new RbdCluster(options, Connect(options));
                s_open[options] = c;
            }
            c._users++;
            return c;
        }
    }

    public void Release()
    {
        lock (s_gate)
        {
            if (--_users > 0) return;
            s_open.Remove(_options);
            _stop.Set();
        }
        _probe.Join(); // a probe in flight uses the handle: shut down only after it
        lock (s_gate)
        {
            if (_handle != IntPtr.Zero) Librbd.rados_shutdown(_handle);
            _handle = IntPtr.Zero;
        }
    }

    private static IntPtr Connect(RbdClusterOptions o)
    {
        string who = $"client.{o.ClientId ?? "admin"}";
        int rc;
        IntPtr h;
        try { rc = Librbd.rados_create(out h, o.ClientId); }
        catch (DllNotFoundException e)
        {
            throw new StoreException($"RBD namespaces need librados and librbd (Debian: apt-get install librbd1): {e.Message}");
        }
        if (rc < 0) throw new StoreException($"cannot create a Ceph client {who}: {Librbd.Describe(rc)}");
        return Configure(h, o, who);
    }

    private static IntPtr Configure(IntPtr h, RbdClusterOptions o, string who)
    {
        try
        {
            if (o.CephConf != null && !File.Exists(o.CephConf)) throw new StoreException($"Ceph configuration file '{o.CephConf}' does not exist");
            int rc = Librbd.rados_conf_read_file(h, o.CephConf);
            if (rc < 0) throw new StoreException($"cannot read the Ceph configuration {ConfName(o)}: {Librbd.Describe(rc)}");
            if (o.Keyring != null)
            {
                if (!File.Exists(o.Keyring)) throw new StoreException($"Ceph keyring '{o.Keyring}' does not exist");
                Set(h, "keyring", o.Keyring);
            }
            string seconds = ((int)Math.Ceiling(o.ConnectTimeout.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            Set(h, "client_mount_timeout", seconds);
            Set(h, "rados_mon_op_timeout", seconds);
            Set(h, "log_to_stderr", "false");
            // A deallocated range reads back as zeros (Identify says so): librbd otherwise skips the parts of a
            // discard that do not cover whole objects, and they keep their old data.
            Set(h, "rbd_skip_partial_discard", "false");
            // No librbd writeback cache: a write is answered once the OSDs have it. With the cache, librbd acknowledges
            // writes from this process's memory after the host's first flush; another gateway serving the same image
            // would then read stale data, and a gateway that dies loses writes the host saw complete.
            Set(h, "rbd_cache", "false");
            rc = Librbd.rados_connect(h);
            if (rc < 0)
                throw new StoreException(-rc switch
                {
                    Librbd.ETIMEDOUT => $"the Ceph cluster of {ConfName(o)} is unreachable (no monitor answered within {seconds} s)",
                    Librbd.EACCES or Librbd.EPERM => $"the Ceph cluster refused {who}'s authentication (check the keyring{(o.Keyring != null ? " " + o.Keyring : "")} and the client id)",
                    Librbd.ENOENT => $"cannot connect to Ceph as {who}: no key for it (keyring missing or without that client)",
                    _ => $"cannot connect to Ceph as {who}: {Librbd.Describe(rc)}",
                });
            return h;
        }
        catch
        {
            Librbd.rados_shutdown(h);
            throw;
        }
    }

    private static void Set(IntPtr h, string option, string value)
    {
        int rc = Librbd.rados_conf_set(h, option, value);
        if (rc < 0) throw new StoreException($"Ceph option {option}={value}: {Librbd.Describe(rc)}");
    }
}
