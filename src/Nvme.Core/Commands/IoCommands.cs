using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Commands;

/// <summary>NVM command set I/O: Read, Write, Flush, Write Zeroes, Dataset Management (NVM command set spec 3).</summary>
internal static class IoCommands
{
    private const uint Fua = 1u << 30;
    private const uint WriteZeroesDeallocate = 1u << 25;
    private const uint DsmAttributeDeallocate = 1u << 2;

    public static NvmeStatus Prepare(FabricQueue q, Controller c, NvmeRequest req)
    {
        ref readonly var sqe = ref req.Sqe;
        switch (sqe.Opcode)
        {
            case IoOpcode.Read:
            case IoOpcode.Write:
                {
                    var ns = c.Subsystem.GetNamespace(sqe.Nsid);
                    if (ns is null) return NvmeStatus.InvalidNamespaceOrFormat;
                    long bytes = (long)sqe.BlockCount << ns.BlockShift;
                    if (bytes > q.Limits.MaxTransferBytes) return NvmeStatus.InvalidField; // beyond MDTS
                    if (sqe.Sgl.Length != bytes) return NvmeStatus.DataSglLengthInvalid;
                    var status = AcquireInRange(ns, c, req, sqe.StartingLba, sqe.BlockCount);
                    return sqe.Opcode == IoOpcode.Write ? RefuseIfWriteProtected(ns, req, status) : status;
                }
            case IoOpcode.WriteZeroes:
                {
                    var ns = c.Subsystem.GetNamespace(sqe.Nsid);
                    if (ns is null) return NvmeStatus.InvalidNamespaceOrFormat;
                    return RefuseIfWriteProtected(ns, req, AcquireInRange(ns, c, req, sqe.StartingLba, sqe.BlockCount));
                }
            case IoOpcode.DatasetManagement:
                {
                    var ns = c.Subsystem.GetNamespace(sqe.Nsid);
                    if (ns is null) return NvmeStatus.InvalidNamespaceOrFormat;
                    int ranges = (int)(sqe.Cdw10 & 0xFF) + 1;
                    if (req.Direction != DataDirection.HostToController || req.DataLength < ranges * 16) return NvmeStatus.DataSglLengthInvalid;
                    var status = Acquire(ns, c, req);
                    return (sqe.Cdw11 & DsmAttributeDeallocate) != 0 ? RefuseIfWriteProtected(ns, req, status) : status;
                }
            case IoOpcode.Flush:
                {
                    if (sqe.Nsid == 0xFFFFFFFF) return NvmeStatus.Success; // every namespace, see ExecuteAsync
                    var ns = c.Subsystem.GetNamespace(sqe.Nsid);
                    return ns is null ? NvmeStatus.InvalidNamespaceOrFormat : Acquire(ns, c, req);
                }
            default:
                return NvmeStatus.InvalidOpcode;
        }
    }

    /// <summary>A command that changes data, admitted (the host sees the namespace), on a write-protected namespace: gives the
    /// reference back and answers Namespace is Write Protected. Checked after the admission so that a masked host learns
    /// nothing about a namespace it cannot see.</summary>
    private static NvmeStatus RefuseIfWriteProtected(Namespace ns, NvmeRequest req, NvmeStatus admitted)
    {
        if (admitted != NvmeStatus.Success || !ns.WriteProtected) return admitted;
        req.Namespace = null;
        ns.Release(req.NamespaceEpoch);
        return NvmeStatus.NamespaceIsWriteProtected;
    }

    /// <summary>Takes the in-flight reference first, then checks the range: a forced shrink sets the new size
    /// and then waits for requests admitted earlier, so whatever passes this check completes before the store
    /// lets go of the space.</summary>
    private static NvmeStatus AcquireInRange(Namespace ns, Controller c, NvmeRequest req, ulong slba, uint blocks)
    {
        var status = Acquire(ns, c, req);
        if (status != NvmeStatus.Success) return status;
        ulong count = ns.BlockCount;
        if (slba < count && blocks <= count - slba) return NvmeStatus.Success;
        req.Namespace = null;
        ns.Release(req.NamespaceEpoch);
        return NvmeStatus.LbaOutOfRange;
    }

    /// <summary>Takes the in-flight reference, then checks the mask: masking a host out changes the visibility and then
    /// waits for the requests admitted earlier, so a request that passes here either finishes before the host is told
    /// the namespace is gone or was admitted after the change and sees it (the same order as the range check).</summary>
    private static NvmeStatus Acquire(Namespace ns, Controller c, NvmeRequest req)
    {
        // Removal stops admitting first: a request that loses this race sees the namespace as gone.
        if (!ns.TryAcquire(out req.NamespaceEpoch)) return NvmeStatus.InvalidNamespaceOrFormat;
        if (!ns.IsVisibleTo(c.HostNqn))
        {
            ns.Release(req.NamespaceEpoch); // masked for this host: an inactive NSID, as for a removed namespace
            return NvmeStatus.InvalidNamespaceOrFormat;
        }
        // ANA: a group that is inaccessible, lost or changing on this port answers with the path status, never executes
        // (one volatile read unless some group refuses I/O somewhere).
        var ana = c.Subsystem.AnaIoStatus(c.PortId, ns);
        if (ana != NvmeStatus.Success)
        {
            ns.Release(req.NamespaceEpoch);
            return ana;
        }
        req.Namespace = ns;
        return NvmeStatus.Success;
    }

    /// <summary>Runs a prepared I/O command. Memory namespaces complete synchronously (no allocation).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<NvmeStatus> ExecuteAsync(FabricQueue q, NvmeRequest req)
    {
        var ns = req.Namespace;
        switch (req.Sqe.Opcode)
        {
            case IoOpcode.Read:
                {
                    long offset = (long)req.Sqe.StartingLba << ns!.BlockShift;
                    await ns.Store.ReadAsync(offset, req.Data).ConfigureAwait(false);
                    Interlocked.Increment(ref ns.Counters.ReadCommands);
                    Interlocked.Add(ref ns.Counters.BytesRead, req.DataLength);
                    return NvmeStatus.Success;
                }
            case IoOpcode.Write:
                {
                    long offset = (long)req.Sqe.StartingLba << ns!.BlockShift;
                    await ns.Store.WriteAsync(offset, req.Data).ConfigureAwait(false);
                    if ((req.Sqe.Cdw12 & Fua) != 0 || !q.Controller!.VolatileWriteCacheEnabled)
                        await ns.Store.FlushAsync().ConfigureAwait(false);
                    Interlocked.Increment(ref ns.Counters.WriteCommands);
                    Interlocked.Add(ref ns.Counters.BytesWritten, req.DataLength);
                    return NvmeStatus.Success;
                }
            case IoOpcode.WriteZeroes:
                {
                    long offset = (long)req.Sqe.StartingLba << ns!.BlockShift;
                    long length = (long)req.Sqe.BlockCount << ns.BlockShift;
                    await ns.Store.ZeroAsync(offset, length, (req.Sqe.Cdw12 & WriteZeroesDeallocate) != 0).ConfigureAwait(false);
                    if ((req.Sqe.Cdw12 & Fua) != 0) await ns.Store.FlushAsync().ConfigureAwait(false);
                    Interlocked.Increment(ref ns.Counters.OtherCommands);
                    return NvmeStatus.Success;
                }
            case IoOpcode.DatasetManagement:
                {
                    Interlocked.Increment(ref ns!.Counters.OtherCommands);
                    if ((req.Sqe.Cdw11 & DsmAttributeDeallocate) == 0) return NvmeStatus.Success; // hints only
                    int ranges = (int)(req.Sqe.Cdw10 & 0xFF) + 1;
                    // Validate every range before touching any (all-or-nothing on a bad range).
                    for (int i = 0; i < ranges; i++)
                    {
                        var (slba, blocks) = DsmRange(req, i);
                        if (blocks != 0 && (slba >= ns.BlockCount || blocks > ns.BlockCount - slba)) return NvmeStatus.LbaOutOfRange;
                    }
                    for (int i = 0; i < ranges; i++)
                    {
                        var (slba, blocks) = DsmRange(req, i);
                        if (blocks == 0) continue;
                        await ns.Store.ZeroAsync((long)slba << ns.BlockShift, (long)blocks << ns.BlockShift, deallocate: true).ConfigureAwait(false);
                    }
                    return NvmeStatus.Success;
                }
            case IoOpcode.Flush:
                if (ns != null) await ns.Store.FlushAsync().ConfigureAwait(false);
                else
                    foreach (var each in q.Controller!.Subsystem.Namespaces)
                    {
                        if (!each.TryAcquire(out int epoch)) continue;
                        if (!each.IsVisibleTo(q.Controller.HostNqn) || q.Controller.Subsystem.AnaIoStatus(q.Controller.PortId, each) != NvmeStatus.Success)
                        {
                            each.Release(epoch); // masked (not this host's) or not accessible on this path
                            continue;
                        }
                        try { await each.Store.FlushAsync().ConfigureAwait(false); }
                        finally { each.Release(epoch); }
                    }
                return NvmeStatus.Success;
            default:
                return NvmeStatus.InvalidOpcode;
        }
    }

    /// <summary>DSM range i: context attributes (4), length in blocks (4), starting LBA (8).</summary>
    private static (ulong Slba, uint Blocks) DsmRange(NvmeRequest req, int i)
    {
        var r = req.DataSpan.Slice(i * 16, 16);
        return (BinaryPrimitives.ReadUInt64LittleEndian(r[8..]), BinaryPrimitives.ReadUInt32LittleEndian(r[4..]));
    }
}
