using System.Net;
using System.Runtime.InteropServices;
using Nvme.Core.Auth;
using Nvme.Core.Spec;

namespace Integration.Tests.Initiator;

/// <summary>Options of a host (controller association).</summary>
public sealed record NvmeTcpHostOptions
{
    public string HostNqn { get; init; } = "nqn.2014-08.org.nvmexpress:uuid:6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11";
    public Guid HostId { get; init; } = new("6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11");
    public bool HeaderDigest { get; init; }
    public bool DataDigest { get; init; }
    /// <summary>KATO in the admin Connect (ms).</summary>
    public uint KeepAliveTimeoutMs { get; init; } = 30_000;
    /// <summary>Admin queue SQSIZE (0's based), as the Linux host (32 entries).</summary>
    public ushort AdminSqSize { get; init; } = 31;
    /// <summary>I/O queue SQSIZE (0's based).</summary>
    public ushort IoSqSize { get; init; } = 127;
    /// <summary>Set CATTR bit 2 (disable SQ flow control) in the I/O queue Connects.</summary>
    public bool DisableSqFlowControl { get; init; }
    /// <summary>Enable the controller (CC.EN, wait for CSTS.RDY) and identify it after Connect.</summary>
    public bool Enable { get; init; } = true;
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>ICReq HPDA of every queue (see <see cref="HostQueueOptions.Hpda"/>).</summary>
    public byte Hpda { get; init; }
    /// <summary>SGLs and CIDs as SPDK's initiator builds them (see <see cref="HostQueueOptions.SpdkStyle"/>).</summary>
    public bool SpdkStyle { get; init; }

    /// <summary>DH-HMAC-CHAP host secret (nvme connect --dhchap-secret): used when a Connect asks for
    /// authentication (AUTHREQ.ATR), on the admin queue and on every I/O queue, as the Linux host does.</summary>
    public DhchapSecret? DhchapSecret { get; init; }
    /// <summary>Controller secret (--dhchap-ctrl-secret): the host also checks the controller (bidirectional).</summary>
    public DhchapSecret? DhchapCtrlSecret { get; init; }
    /// <summary>Hashes offered in the Negotiate (the Linux host's three by default).</summary>
    public IReadOnlyList<DhchapHash>? DhchapHashes { get; init; }
    /// <summary>DH groups offered (all six by default; --dhchap-dhgroup narrows it in nvme-cli terms).</summary>
    public IReadOnlyList<DhGroupId>? DhchapDhGroups { get; init; }
    /// <summary>Do not authenticate even when asked (to see what an unauthenticated host gets); by default a host
    /// asked to authenticate without a secret fails its Connect, as the Linux host does.</summary>
    public bool IgnoreAuthenticationRequest { get; init; }

    internal HostQueueOptions QueueOptions => new() { HeaderDigest = HeaderDigest, DataDigest = DataDigest, CommandTimeout = CommandTimeout, Hpda = Hpda, SpdkStyle = SpdkStyle };
}

/// <summary>
/// A small NVMe/TCP host: one controller association = an admin queue plus I/O queues, each on its own TCP
/// connection, brought up the way the Linux host does it (Connect, CAP, CC.EN, CSTS.RDY, Identify, Number of
/// Queues, I/O Connects). Commands return the NVMe completion; helpers that return data throw
/// <see cref="NvmeStatusException"/> on a non-success status.
/// </summary>
public sealed class NvmeTcpHost : IAsyncDisposable
{
    public const uint CcEnableValue = 1u | (6u << 16) | (4u << 20); // EN, CSS NVM, MPS 4 KiB, IOSQES 6, IOCQES 4

    private readonly List<HostQueue> _ioQueues = [];

    private NvmeTcpHost(IPEndPoint endpoint, string subNqn, NvmeTcpHostOptions options, HostQueue admin)
    {
        Endpoint = endpoint;
        SubNqn = subNqn;
        Options = options;
        Admin = admin;
    }

    public IPEndPoint Endpoint { get; }
    public string SubNqn { get; }
    public NvmeTcpHostOptions Options { get; }
    public HostQueue Admin { get; }
    public IReadOnlyList<HostQueue> IoQueues => _ioQueues;
    public ushort Cntlid { get; private set; }
    public ulong Cap { get; private set; }
    /// <summary>Identify Controller data (after enable).</summary>
    public byte[]? IdentifyControllerData { get; private set; }
    public IdentifyController IdentifyController => MemoryMarshal.Read<IdentifyController>(IdentifyControllerData ?? throw new InvalidOperationException("not identified"));
    /// <summary>Largest transfer per command from MDTS (null = no limit).</summary>
    public int? MaxTransferBytes => IdentifyController.Mdts == 0 ? null : 4096 << IdentifyController.Mdts;

    /// <summary>Opens the admin queue, connects (CNTLID 0xFFFF), enables and identifies the controller.</summary>
    public static async Task<NvmeTcpHost> ConnectAsync(IPEndPoint endpoint, string subNqn, NvmeTcpHostOptions? options = null, CancellationToken ct = default)
    {
        options ??= new NvmeTcpHostOptions();
        var admin = await HostQueue.OpenAsync(endpoint, options.QueueOptions, ct).ConfigureAwait(false);
        admin.InCapsuleDataLimit = 8192; // the Linux host assumes 8 KiB on the admin queue
        var host = new NvmeTcpHost(endpoint, subNqn, options, admin);
        try
        {
            var c = await admin.ConnectAsync(subNqn, options.HostNqn, options.HostId, qid: 0, options.AdminSqSize, cntlid: 0xFFFF,
                options.KeepAliveTimeoutMs, ct: ct).ConfigureAwait(false);
            c.EnsureSuccess($"admin Connect to {subNqn}");
            host.Cntlid = (ushort)c.Dword0;
            host.AuthenticationRequested = (c.Dword0 & ConnectCommand.AuthreqAtr) != 0;
            if (host.AuthenticationRequested) await host.AuthenticateIfAskedAsync(admin, ct).ConfigureAwait(false);
            if (options.Enable) await host.EnableAsync(ct).ConfigureAwait(false);
            return host;
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Reads CAP, writes CC.EN=1 and polls CSTS.RDY, then Identify Controller (checks CNTLID).</summary>
    public async Task EnableAsync(CancellationToken ct = default)
    {
        Cap = (await PropertyGetAsync(PropertyOffset.Cap, eightBytes: true, ct).ConfigureAwait(false)).EnsureSuccess("Property Get CAP").Result;
        (await PropertySetAsync(PropertyOffset.Cc, CcEnableValue, ct).ConfigureAwait(false)).EnsureSuccess("Property Set CC");
        var timeout = TimeSpan.FromMilliseconds(Math.Max(500, ((Cap >> 24) & 0xFF) * 500));
        var deadline = DateTime.UtcNow + timeout + TimeSpan.FromSeconds(5);
        while (true)
        {
            uint csts = (uint)(await PropertyGetAsync(PropertyOffset.Csts, false, ct).ConfigureAwait(false)).EnsureSuccess("Property Get CSTS").Dword0;
            if ((csts & 2) != 0) throw new NvmeTcpProtocolException($"controller fatal status after CC.EN=1 (CSTS 0x{csts:x})");
            if ((csts & 1) != 0) break;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("CSTS.RDY did not become 1");
            await Task.Delay(10, ct).ConfigureAwait(false);
        }
        IdentifyControllerData = await IdentifyAsync(IdentifyCns.Controller, ct: ct).ConfigureAwait(false);
        var id = IdentifyController;
        if (id.Cntlid != Cntlid) throw new NvmeTcpProtocolException($"Identify CNTLID {id.Cntlid} != Connect result {Cntlid}");
    }

    /// <summary>Set Features Number of Queues, then one TCP connection + Connect per I/O queue (QID 1..n).</summary>
    public async Task<IReadOnlyList<HostQueue>> CreateIoQueuesAsync(int count, CancellationToken ct = default)
    {
        uint n = (uint)count - 1;
        var c = (await SetFeaturesAsync(FeatureId.NumberOfQueues, n | (n << 16), ct).ConfigureAwait(false)).EnsureSuccess("Set Features Number of Queues");
        int granted = (int)Math.Min(c.Dword0 & 0xFFFF, c.Dword0 >> 16) + 1;
        if (granted < count) throw new InvalidOperationException($"asked for {count} I/O queues, granted {granted}");
        var id = IdentifyController;
        int inCapsule = (int)Math.Max(0, id.Ioccsz * 16 - SubmissionQueueEntry.Size);
        for (int i = 0; i < count; i++)
        {
            var q = await HostQueue.OpenAsync(Endpoint, Options.QueueOptions, ct).ConfigureAwait(false);
            try
            {
                ushort qid = (ushort)(_ioQueues.Count + 1);
                // Linux sends KATO 0 on I/O queues; SPDK repeats the admin queue's.
                var r = await q.ConnectAsync(SubNqn, Options.HostNqn, Options.HostId, qid, Options.IoSqSize, Cntlid, Options.SpdkStyle ? Options.KeepAliveTimeoutMs : 0,
                    Options.DisableSqFlowControl, ct).ConfigureAwait(false);
                r.EnsureSuccess($"I/O queue {qid} Connect");
                if ((ushort)r.Dword0 != Cntlid) throw new NvmeTcpProtocolException($"I/O Connect returned CNTLID {r.Dword0}, expected {Cntlid}");
                if ((r.Dword0 & ConnectCommand.AuthreqAtr) != 0) await AuthenticateIfAskedAsync(q, ct).ConfigureAwait(false);
                q.InCapsuleDataLimit = inCapsule;
                _ioQueues.Add(q);
            }
            catch
            {
                await q.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        return _ioQueues;
    }

    public HostQueue Io(int index = 0) => _ioQueues[index];

    // ------------------------------------------------------------------ DH-HMAC-CHAP

    /// <summary>The admin Connect's result asked for authentication (AUTHREQ.ATR).</summary>
    public bool AuthenticationRequested { get; private set; }
    /// <summary>What the controller chose in the last authentication (hash, DH group).</summary>
    public (DhchapHash Hash, DhGroupId DhGroup)? LastAuthentication { get; private set; }

    private async Task AuthenticateIfAskedAsync(HostQueue q, CancellationToken ct)
    {
        if (Options.IgnoreAuthenticationRequest) return;
        if (Options.DhchapSecret is null) throw new NvmeAuthenticationException($"queue {q.QueueId}: the controller requires authentication and no DH-HMAC-CHAP secret is set");
        await AuthenticateAsync(q, ct).ConfigureAwait(false);
    }

    /// <summary>Runs one DH-HMAC-CHAP transaction on <paramref name="q"/> (also to re-authenticate a live queue):
    /// Negotiate, Challenge, Reply, Success1 and, when bidirectional, Success2; a Failure1 or a controller response
    /// that does not check out throws <see cref="NvmeAuthenticationException"/> (after sending Failure2 for the latter).</summary>
    public async Task AuthenticateAsync(HostQueue q, CancellationToken ct = default)
    {
        var secret = Options.DhchapSecret ?? throw new InvalidOperationException("no DH-HMAC-CHAP secret");
        var h = new DhchapHost(Options.HostNqn, SubNqn, secret, Options.DhchapCtrlSecret)
        {
            Hashes = Options.DhchapHashes ?? Nvme.Core.Auth.DhchapHashes.All,
            DhGroups = Options.DhchapDhGroups ?? Enum.GetValues<DhGroupId>(),
        };
        try
        {
            await AuthSendAsync(q, h.Negotiate(), ct).ConfigureAwait(false);
            var reply = h.Reply(await AuthReceiveAsync(q, ct).ConfigureAwait(false));
            await AuthSendAsync(q, reply, ct).ConfigureAwait(false);
            var success2 = h.Success1(await AuthReceiveAsync(q, ct).ConfigureAwait(false));
            if (success2 != null) await AuthSendAsync(q, success2, ct).ConfigureAwait(false);
            LastAuthentication = (h.ChosenHash, h.ChosenDhGroup);
        }
        catch (DhchapException e)
        {
            if (e.Failure2 != null)
            {
                try { await AuthSendAsync(q, e.Failure2, ct).ConfigureAwait(false); }
                catch (Exception) { /* the controller may close first */ }
            }
            throw new NvmeAuthenticationException($"queue {q.QueueId}: {e.Message}", e) { Reason = e.Reason };
        }
    }

    /// <summary>Authentication Send of one message (TL = its length; in the capsule unless <paramref name="inCapsule"/> is false).</summary>
    public static async Task AuthSendAsync(HostQueue q, ReadOnlyMemory<byte> message, CancellationToken ct = default, bool? inCapsule = null) =>
        (await q.SubmitAsync(Sqe.AuthSend((uint)message.Length), hostData: message, inCapsule: inCapsule, ct: ct).ConfigureAwait(false))
            .EnsureSuccess("Authentication Send");

    /// <summary>Authentication Receive with AL 4096 (what the Linux host asks for).</summary>
    public static async Task<byte[]> AuthReceiveAsync(HostQueue q, CancellationToken ct = default, int al = 4096)
    {
        var buffer = new byte[al];
        (await q.SubmitAsync(Sqe.AuthReceive((uint)al), controllerData: buffer, ct: ct).ConfigureAwait(false)).EnsureSuccess("Authentication Receive");
        return buffer;
    }

    // ------------------------------------------------------------------ admin

    public Task<NvmeCompletion> PropertyGetAsync(uint offset, bool eightBytes, CancellationToken ct = default) =>
        Admin.SubmitAsync(Sqe.PropertyGet(offset, eightBytes), ct: ct);

    public Task<NvmeCompletion> PropertySetAsync(uint offset, uint value, CancellationToken ct = default) =>
        Admin.SubmitAsync(Sqe.PropertySet(offset, value), ct: ct);

    public async Task<byte[]> IdentifyAsync(byte cns, uint nsid = 0, byte csi = 0, CancellationToken ct = default)
    {
        var buffer = new byte[4096];
        (await Admin.SubmitAsync(Sqe.Identify(cns, nsid, csi: csi), controllerData: buffer, ct: ct).ConfigureAwait(false))
            .EnsureSuccess($"Identify CNS 0x{cns:x2} NSID {nsid}");
        return buffer;
    }

    public Task<NvmeCompletion> IdentifyRawAsync(byte cns, uint nsid, Memory<byte> buffer, CancellationToken ct = default) =>
        Admin.SubmitAsync(Sqe.Identify(cns, nsid), controllerData: buffer, ct: ct);

    public async Task<byte[]> GetLogPageAsync(byte lid, int length, ulong offset = 0, uint nsid = 0xFFFFFFFF, bool retainAsyncEvent = false, CancellationToken ct = default)
    {
        var buffer = new byte[length];
        (await Admin.SubmitAsync(Sqe.GetLogPage(lid, length, offset, nsid, retainAsyncEvent), controllerData: buffer, ct: ct).ConfigureAwait(false))
            .EnsureSuccess($"Get Log Page 0x{lid:x2} ({length} bytes at {offset})");
        return buffer;
    }

    public Task<NvmeCompletion> SetFeaturesAsync(byte fid, uint value, CancellationToken ct = default) =>
        Admin.SubmitAsync(Sqe.SetFeatures(fid, value), ct: ct);

    public Task<NvmeCompletion> GetFeaturesAsync(byte fid, uint select = 0, CancellationToken ct = default) =>
        Admin.SubmitAsync(Sqe.GetFeatures(fid, select), ct: ct);

    public Task<NvmeCompletion> KeepAliveAsync(CancellationToken ct = default) => Admin.SubmitAsync(Sqe.KeepAlive(), ct: ct);

    /// <summary>Submits an Async Event Request; the task completes when the target reports an event.</summary>
    public Task<NvmeCompletion> AsyncEventRequestAsync(TimeSpan timeout, CancellationToken ct = default) =>
        Admin.SubmitAsync(Sqe.AsyncEventRequest(), timeout: timeout, ct: ct);

    // ------------------------------------------------------------------ I/O (queue index 0-based into IoQueues)

    public Task<NvmeCompletion> WriteAsync(int queue, uint nsid, ulong slba, ReadOnlyMemory<byte> data, int blockSize = 512, bool? inCapsule = null, bool fua = false, CancellationToken ct = default) =>
        _ioQueues[queue].SubmitAsync(Sqe.ReadWrite(IoOpcode.Write, nsid, slba, data.Length / blockSize, fua), hostData: data, inCapsule: inCapsule, ct: ct);

    public Task<NvmeCompletion> ReadAsync(int queue, uint nsid, ulong slba, Memory<byte> buffer, int blockSize = 512, CancellationToken ct = default) =>
        _ioQueues[queue].SubmitAsync(Sqe.ReadWrite(IoOpcode.Read, nsid, slba, buffer.Length / blockSize), controllerData: buffer, ct: ct);

    public Task<NvmeCompletion> FlushAsync(int queue, uint nsid, CancellationToken ct = default) =>
        _ioQueues[queue].SubmitAsync(Sqe.Flush(nsid), ct: ct);

    public Task<NvmeCompletion> WriteZeroesAsync(int queue, uint nsid, ulong slba, int blocks, bool deallocate = false, CancellationToken ct = default) =>
        _ioQueues[queue].SubmitAsync(Sqe.WriteZeroes(nsid, slba, blocks, deallocate), ct: ct);

    public Task<NvmeCompletion> DeallocateAsync(int queue, uint nsid, (ulong Slba, uint Blocks)[] ranges, CancellationToken ct = default) =>
        _ioQueues[queue].SubmitAsync(Sqe.DatasetManagement(nsid, ranges.Length, deallocate: true), hostData: Sqe.DsmRanges(ranges), ct: ct);

    /// <summary>Closes the I/O queues, then the admin queue (the controller goes with it).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var q in _ioQueues) await q.DisposeAsync().ConfigureAwait(false);
        await Admin.DisposeAsync().ConfigureAwait(false);
    }
}
