using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Xunit.Sdk;

namespace Integration.Tests.InProcess;

/// <summary>Asynchronous event helpers of the hot-plug and masking tests: park an AER, expect a Namespace Attribute
/// Changed notice, or make sure none came.</summary>
internal static class AsyncEvents
{
    public static readonly TimeSpan AerTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan EventWait = TimeSpan.FromSeconds(10);

    /// <summary>Submits an AER and makes sure the target has it (a Keep Alive behind it on the admin queue
    /// completed).</summary>
    public static async Task<Task<NvmeCompletion>> ParkAerAsync(NvmeTcpHost host)
    {
        var aer = host.AsyncEventRequestAsync(AerTimeout);
        _ = aer.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted); // AERs still parked at disposal fail
        (await host.KeepAliveAsync()).EnsureSuccess("Keep Alive");
        return aer;
    }

    public static async Task ExpectNoticeAsync(Task<NvmeCompletion> aer, string what)
    {
        NvmeCompletion c;
        try { c = await aer.WaitAsync(EventWait); }
        catch (TimeoutException) { throw new XunitException($"{what}: no AER completion within {EventWait}"); }
        c.EnsureSuccess($"AER ({what})");
        Assert.True(c.Dword0 == AsyncEvent.NamespaceAttributeChangedDword0, $"{what}: AER dword0 0x{c.Dword0:x8}, expected 0x00040002");
    }

    /// <summary>A negative check: the AER is still parked after a round trip on the admin queue and a short wait.</summary>
    public static async Task AssertNotCompletedAsync(Task<NvmeCompletion> aer, string what)
    {
        await Task.Delay(200);
        Assert.False(aer.IsCompleted, what + (aer.IsCompletedSuccessfully ? $" ({aer.Result})" : ""));
    }
}
