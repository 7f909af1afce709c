namespace Integration.Tests.LinuxHost;

/// <summary>
/// The guest kernels tests/integration/guest/prepare.sh can build (<c>--kernel 6.1|6.12</c>). A theory over
/// this enum shows which kernel ran in the test's name, e.g. <c>Discovery_...(kernel: Linux612)</c>, so
/// <c>--filter "DisplayName~Linux612"</c> selects one kernel's runs.
/// </summary>
public enum GuestKernel
{
    /// <summary>Debian 12's own kernel (linux-image-amd64 from bookworm): no NVMe in-band authentication
    /// (built without CONFIG_NVME_AUTH), no NVMe/TCP TLS.</summary>
    Linux61,

    /// <summary>bookworm-backports' kernel: CONFIG_NVME_AUTH/CONFIG_NVME_HOST_AUTH (DH-HMAC-CHAP on the host),
    /// CONFIG_NVME_TARGET_AUTH (on the guest's own nvmet), CONFIG_NVME_TCP_TLS.</summary>
    Linux612,
}

internal static class GuestKernels
{
    /// <summary>The value of prepare.sh's / run-guest.sh's <c>--kernel</c>.</summary>
    public static string Series(this GuestKernel kernel) => kernel switch
    {
        GuestKernel.Linux61 => "6.1",
        GuestKernel.Linux612 => "6.12",
        _ => throw new ArgumentOutOfRangeException(nameof(kernel), kernel, null),
    };

    /// <summary>Theory data: every kernel (tests the CI runs on both).</summary>
    public static TheoryData<GuestKernel> Both => new() { GuestKernel.Linux61, GuestKernel.Linux612 };

    /// <summary>Theory data: only 6.1 (tests kept off 6.12 to keep the suite's time sane; see the guest README).</summary>
    public static TheoryData<GuestKernel> Only61 => new() { GuestKernel.Linux61 };

    /// <summary>Theory data: only 6.12 (tests of what 6.1 cannot do, e.g. DH-HMAC-CHAP).</summary>
    public static TheoryData<GuestKernel> Only612 => new() { GuestKernel.Linux612 };
}
