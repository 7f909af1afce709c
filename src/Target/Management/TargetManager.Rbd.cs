using Microsoft.Extensions.Logging;
using Nvme.Core.Model;
using Nvme.Core.Storage.Rbd;

namespace Target.Management;

/// <summary>RBD namespaces: an image resized by anyone else (another gateway, `rbd resize`) reaches the hosts as a
/// namespace change, exactly like a resize through this API (serialised with the subsystem's other changes; a shrink
/// drains the I/O addressing the lost tail first). The configuration's size for an RBD namespace is the size a missing
/// image is created with, so nothing is saved.</summary>
public sealed partial class TargetManager
{
    private void HookExternalResize(string nqn, Namespace ns)
    {
        if (ns.Store is not RbdBlockStore rbd) return;
        uint nsid = ns.Nsid;
        rbd.ExternallyResized += (store, bytes) => _ = Task.Run(() => ApplyExternalResizeAsync(nqn, nsid, store, bytes));
    }

    private async Task ApplyExternalResizeAsync(string nqn, uint nsid, RbdBlockStore store, long bytes)
    {
        try
        {
            await OnSubsystem(nqn, async s =>
            {
                if (s.GetNamespace(nsid) is not { } ns || ns.Store != store) return false; // removed or replaced meanwhile
                long usable = bytes / ns.BlockSize * ns.BlockSize;
                ulong before = ns.BlockCount;
                if (usable == (long)before * ns.BlockSize || usable <= 0) return false;
                await s.ResizeNamespaceAsync(nsid, usable, allowShrink: true, DrainTimeout).ConfigureAwait(false);
                _log.RbdImageResized(nsid, nqn, store.Description, before, ns.BlockCount);
                return true;
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.RbdImageResizeFailed(nsid, nqn, store.Description, bytes, e.Message);
        }
    }
}
