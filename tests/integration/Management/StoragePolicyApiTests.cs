using System.Net;
using Integration.Tests.InProcess;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>The storage policy through the management API: what it forbids is a 403 problem naming the rule
/// and how to allow it (other bad input stays 400), and nothing of a refused change is live.</summary>
public sealed class StoragePolicyApiTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("nvmet-policy-api-");
    private string In(string name) => Path.Combine(_dir.FullName, name);

    public void Dispose() => _dir.Delete(recursive: true);

    private Task<ApiTarget> StartAsync()
    {
        var config = TestTarget.DefaultConfig();
        config.Storage = new StorageConfig { Directories = [_dir.FullName], BlockDevices = [In("fake-disk")] };
        return ApiTarget.StartAsync(output, config);
    }

    [Fact]
    public async Task ForbiddenPaths_Are403_OtherMistakes400_AndNothingIsAdded()
    {
        await using var t = await StartAsync();
        var ns = Api.Sub() + "/namespaces";
        File.CreateSymbolicLink(In("evil.img"), "/etc/shadow");
        File.WriteAllBytes(In("fake-disk"), new byte[1 << 20]);

        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = "/etc/shadow" }, HttpStatusCode.Forbidden,
            $"file namespace '/etc/shadow' is outside the storage directories ({_dir.FullName}); allow its directory with --storage-dir DIR or storage.directories");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = In("evil.img") }, HttpStatusCode.Forbidden,
            "resolves to '/etc/shadow', which is outside the storage directories");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = "../../../../../../etc/shadow" }, HttpStatusCode.Forbidden,
            "resolves to '/etc/shadow'");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "block", path = In("fake-disk") }, HttpStatusCode.Forbidden,
            "is a regular file, not a block device");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "block", path = "/dev/null" }, HttpStatusCode.Forbidden,
            "is not in the allowed block devices");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = "missing.img" }, HttpStatusCode.BadRequest,
            "backing file 'missing.img' does not exist (give a size to create it)");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = "nodir/x.img", size = "1M" }, HttpStatusCode.BadRequest,
            $"directory '{In("nodir")}' for backing file 'nodir/x.img' does not exist");
        // A subsystem created with a forbidden namespace: 403, and it does not exist afterwards.
        await t.Http.ProblemAsync(HttpMethod.Post, "subsystems",
            new { nqn = "nqn.2026-01.io.example:bad", allowAnyHost = true, namespaces = new[] { new { nsid = 1, backend = "file", path = "/etc/shadow" } } },
            HttpStatusCode.Forbidden, "outside the storage directories");
        Assert.Null(t.Host.Target.FindSubsystem("nqn.2026-01.io.example:bad"));

        Assert.Equal([1u], (await t.Http.GetJsonAsync(ns)).EnumerateArray().Select(n => n.GetProperty("nsid").GetUInt32()));
        Assert.Equal(1 << 20, new FileInfo(In("fake-disk")).Length);
        Assert.Equal(["evil.img", "fake-disk"], _dir.GetFileSystemInfos().Select(f => f.Name).Order());
    }

    [Fact]
    public async Task RelativePaths_LandInTheStorageDirectory_Mode0600()
    {
        await using var t = await StartAsync();
        var added = await t.Http.PostJsonAsync(Api.Sub() + "/namespaces", new { backend = "file", path = "disk2.img", size = "4M" }, HttpStatusCode.Created);
        Assert.Equal(In("disk2.img"), added.GetProperty("path").GetString());
        Assert.Equal(4L << 20, new FileInfo(In("disk2.img")).Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(In("disk2.img")));
    }
    [Fact]
    public async Task Cli_NsAddPreallocate_AllocatesTheFile()
    {
        await using var t = await StartAsync();
        var image = In("pre.img");
        var (code, stdout, stderr) = await Cli.RunAsync("ns", "add", "--file", image, "--size", "2M", "--preallocate", "--api", t.ApiUrl);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains($"file {image}, 2 MiB", stdout);
        var blocks = long.Parse(Root.Run("stat", "-c", "%b", image).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(blocks * 512 >= 2L << 20, $"only {blocks * 512} bytes allocated");
        (code, _, stderr) = await Cli.RunAsync("ns", "add", "--memory", "1M", "--preallocate", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("--preallocate goes with --file", stderr);
        // The spec form of the same option.
        var cl = CommandLine.Parse(["--namespace", "file:x.img:1M,prealloc", "--namespace", "file:y.img:1M,bs=4096,prealloc"], new Dictionary<string, string>());
        Assert.Empty(cl.Errors);
        Assert.All(cl.Config.Subsystems[0].Namespaces, n => Assert.True(n.Preallocate));
        Assert.Equal(4096, cl.Config.Subsystems[0].Namespaces[1].BlockSize);
        Assert.Contains("only bs=512|4096 and prealloc", Assert.Single(CommandLine.Parse(["--namespace", "file:x.img:1M,sparse"], new Dictionary<string, string>()).Errors));
    }
}
