using System.Net;
using Integration.Tests.Initiator;
using Integration.Tests.Management;
using Nvme.Core.Storage;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>Data errors a host must hear about, through the test initiator: a read past the end of a backing
/// file truncated under the target is an Unrecovered Read Error with DNR (never zeros); a full file system is
/// Capacity Exceeded with DNR; preallocation finds a full file system when the namespace is created.</summary>
public sealed class HonestDataTests(ITestOutputHelper output)
{
    private const ushort UnrecoveredReadErrorDnr = 0x4281; // DNR | SCT 2 (media) | SC 0x81
    private const ushort CapacityExceededDnr = 0x4081;     // DNR | SCT 0 | SC 0x81

    private static void FileNamespace(TargetConfig c, string dir, string path, string size, bool preallocate = false)
    {
        c.Storage = new StorageConfig { Directories = [dir] };
        c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "file", Path = path, Size = size, Preallocate = preallocate ? true : null });
    }

    [Fact]
    public async Task ReadPastTheEndOfATruncatedFile_IsAnUnrecoveredReadError()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-truncate-");
        try
        {
            var image = Path.Combine(dir.FullName, "ns2.img");
            await using var target = await TestTarget.StartAsync(output, c => FileNamespace(c, dir.FullName, image, "8M"));
            await using var host = await target.ConnectWithIoAsync(1);
            var data = TestData.Random(64 * 1024, 21);
            (await host.WriteAsync(0, 2, 0, data)).EnsureSuccess();
            (await host.WriteAsync(0, 2, 8192, data)).EnsureSuccess(); // at 4 MiB

            // Someone else truncates the file to 1 MiB while the target serves it.
            using (var h = File.OpenHandle(image, FileMode.Open, FileAccess.ReadWrite)) RandomAccess.SetLength(h, 1 << 20);

            var back = new byte[data.Length];
            (await host.ReadAsync(0, 2, 0, back)).EnsureSuccess(); // still inside the file
            Assert.Equal(data, back);
            var lost = new byte[data.Length];
            Assert.Equal(UnrecoveredReadErrorDnr, (await host.ReadAsync(0, 2, 8192, lost)).Status);
            // Across the new end: the first part exists, the rest does not — still an error, not a half-zeroed success.
            Assert.Equal(UnrecoveredReadErrorDnr, (await host.ReadAsync(0, 2, 2048 - 8, new byte[8192])).Status);
            Assert.Equal(UnrecoveredReadErrorDnr, (await host.ReadAsync(0, 2, 16383, new byte[512])).Status);
            // The queue keeps working.
            (await host.ReadAsync(0, 2, 0, back)).EnsureSuccess();
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task FullFileSystem_IsCapacityExceeded_ForWritesAndWriteZeroes()
    {
        using var fs = TmpfsMount.Create("2m");
        var image = Path.Combine(fs.Path, "ns2.img");
        await using var target = await TestTarget.StartAsync(output, c => FileNamespace(c, fs.Path, image, "16M")); // sparse, 8x the file system
        await using var host = await target.ConnectWithIoAsync(1);
        var chunk = TestData.Random(128 * 1024, 22);
        int written = 0;
        NvmeCompletion? failed = null;
        for (ulong lba = 0; lba < (16UL << 20) / 512; lba += (ulong)chunk.Length / 512)
        {
            var c = await host.WriteAsync(0, 2, lba, chunk);
            if (!c.IsSuccess) { failed = c; break; }
            written++;
        }
        Assert.NotNull(failed); // 16 MiB cannot fit in 2 MiB
        Assert.Equal(CapacityExceededDnr, failed.Status);
        Assert.InRange(written, 1, 16); // what fitted was accepted
        // Zeroing space that is not allocated yet needs space too.
        Assert.Equal(CapacityExceededDnr, (await host.WriteZeroesAsync(0, 2, 30000, 256)).Status);
        // What was written before is intact.
        var back = new byte[chunk.Length];
        (await host.ReadAsync(0, 2, 0, back)).EnsureSuccess();
        Assert.Equal(chunk, back);
    }

    [Fact]
    public async Task Preallocation_RefusesANamespaceTheFileSystemCannotHold_AndLeavesNoFile()
    {
        using var fs = TmpfsMount.Create("2m");
        var image = Path.Combine(fs.Path, "big.img");
        // At start: the target does not start, with the reason.
        var e = await Assert.ThrowsAsync<StoreException>(() => TestTarget.StartAsync(output, c => FileNamespace(c, fs.Path, image, "16M", preallocate: true)));
        Assert.StartsWith($"cannot preallocate 16 MiB for backing file '{image}': No space left on device", e.Message);
        Assert.Matches(@"; the file system has [0-9.]+ (KiB|MiB|bytes) free; the file was not created$", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(fs.Path));

        // Through the API: 400 with the reason, nothing left; a namespace that fits is allocated in full, and a
        // grow that does not fit is refused with the namespace unchanged.
        var config = TestTarget.DefaultConfig();
        config.Storage = new StorageConfig { Directories = [fs.Path] };
        await using var t = await ApiTarget.StartAsync(output, config);
        var ns = Api.Sub() + "/namespaces";
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = "big.img", size = "16M", preallocate = true }, HttpStatusCode.BadRequest,
            $"cannot preallocate 16 MiB for backing file '{image}': No space left on device");
        Assert.Empty(Directory.GetFileSystemEntries(fs.Path));

        var small = Path.Combine(fs.Path, "small.img");
        await t.Http.PostJsonAsync(ns, new { nsid = 2, backend = "file", path = "small.img", size = "1M", preallocate = true }, HttpStatusCode.Created);
        Assert.Equal(1 << 20, new FileInfo(small).Length);
        Assert.Equal(1L << 20, DiskUsage(small));
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/2/resize", new { size = "16M" }, HttpStatusCode.BadRequest, "cannot preallocate 15 MiB");
        Assert.Equal(1 << 20, new FileInfo(small).Length);
        Assert.Equal(1L << 20, (await t.Http.GetJsonAsync(ns + "/2")).GetProperty("sizeBytes").GetInt64());
    }

    /// <summary>Bytes allocated to a file (st_blocks x 512).</summary>
    private static long DiskUsage(string path) => long.Parse(Root.Run("stat", "-c", "%b", path).Trim(), System.Globalization.CultureInfo.InvariantCulture) * 512;
}
