using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Target.Configuration;
using Target.Storage;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>The storage path policy: file namespaces only inside the storage directories (real paths, so no
/// symbolic link or ".." leads out), regular files only, created 0600; block namespaces only on allowed block
/// devices; relative paths in the first storage directory; the defaults and how options set them.</summary>
public sealed class StoragePolicyTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("nvmet-policy-");
    private string Storage => _dir.FullName;
    private string In(string name) => Path.Combine(Storage, name);

    public void Dispose() => _dir.Delete(recursive: true);

    private StoragePolicy Policy(params string[] blockDevices) => new([Storage], blockDevices);

    private static StoragePolicyException Refused(StorageRule rule, Action open)
    {
        var e = Assert.Throws<StoragePolicyException>(open);
        Assert.Equal(rule, e.Rule);
        return e;
    }

    [Fact]
    public void EtcShadow_IsRefused_WithTheRuleAndHowToAllowIt()
    {
        var e = Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile("/etc/shadow", null));
        Assert.Equal($"file namespace '/etc/shadow' is outside the storage directories ({Storage}); allow its directory with --storage-dir DIR or storage.directories", e.Message);
        // A new file outside is refused just the same, before anything is created.
        Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile("/etc/nvmet-created.img", 1 << 20));
        Assert.False(File.Exists("/etc/nvmet-created.img"));
    }

    [Fact]
    public void SymbolicLinksOut_AreRefused_LastComponentOrDirectory()
    {
        File.CreateSymbolicLink(In("evil.img"), "/etc/shadow");
        var e = Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile(In("evil.img"), null));
        Assert.Contains($"'{In("evil.img")}' resolves to '/etc/shadow', which is outside the storage directories", e.Message);
        Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile("evil.img", null)); // relative: the same file

        // An intermediate directory that is a link out: neither an existing file nor a new one gets through.
        Directory.CreateSymbolicLink(In("etc"), "/etc");
        Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile(In("etc/shadow"), null));
        Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile(In("etc/new.img"), 1 << 20));
        Assert.False(File.Exists("/etc/new.img"));

        // A link that stays inside is fine; the store reports where the data really is.
        File.WriteAllBytes(In("real.img"), new byte[1 << 20]);
        File.CreateSymbolicLink(In("alias.img"), In("real.img"));
        using var store = Policy().OpenFile("alias.img", null);
        Assert.Equal(In("real.img"), store.RealPath);
    }

    [Fact]
    public void DotDotEscapes_AreRefused()
    {
        Directory.CreateDirectory(In("sub"));
        Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile("../../../../../../etc/shadow", null));
        var e = Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile(In("sub/../../../../../../etc/passwd"), null));
        Assert.Contains("resolves to '/etc/passwd'", e.Message);
        // ".." that stays inside is fine.
        using var store = Policy().OpenFile(In("sub/../inside.img"), 1 << 20);
        Assert.Equal(In("inside.img"), store.RealPath);
    }

    [Fact]
    public void NewFiles_AreMode0600_AndRelativePathsLandInTheFirstStorageDirectory()
    {
        var second = Directory.CreateTempSubdirectory("nvmet-policy-2-");
        try
        {
            var policy = new StoragePolicy([Storage, second.FullName]);
            using (var store = policy.OpenFile("disk.img", 4 << 20))
            {
                Assert.True(store.Created);
                Assert.Equal(In("disk.img"), store.Path);
                Assert.Equal($"file {In("disk.img")}", store.Description);
            }
            Assert.Equal(4 << 20, new FileInfo(In("disk.img")).Length);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(In("disk.img")));
            // The second directory is allowed too (absolute paths).
            using (policy.OpenFile(Path.Combine(second.FullName, "other.img"), 1 << 20)) { }
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(second.FullName, "other.img")));
        }
        finally { second.Delete(recursive: true); }
    }

    [Fact]
    public void MissingDirectory_IsTheFirstError_WithOrWithoutASize()
    {
        foreach (long? size in new long?[] { null, 1 << 20 })
        {
            var e = Assert.Throws<StoreException>(() => Policy().OpenFile("nodir/x.img", size));
            Assert.IsNotType<StoragePolicyException>(e);
            Assert.Equal($"directory '{In("nodir")}' for backing file 'nodir/x.img' does not exist; create it first (mkdir -p {In("nodir")})", e.Message);
        }
        Assert.Equal("backing file 'missing.img' does not exist (give a size to create it)",
            Assert.Throws<StoreException>(() => Policy().OpenFile("missing.img", null)).Message);
        // Outside the storage directories, the refusal says the directory is missing too.
        var outside = Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile("/nonexistent/dir/x.img", null));
        Assert.EndsWith("(and create it: directory '/nonexistent/dir' does not exist)", outside.Message);
    }

    [Fact]
    public void NotARegularFile_IsRefused()
    {
        Directory.CreateDirectory(In("adir"));
        Assert.Contains("is a directory, not a regular file", Refused(StorageRule.NotARegularFile, () => Policy().OpenFile(In("adir"), null)).Message);
        // A device node reached through a link inside the storage directory is still a device.
        File.CreateSymbolicLink(In("null.img"), "/dev/null");
        Refused(StorageRule.OutsideStorageDirectories, () => Policy().OpenFile(In("null.img"), null));
        var devDir = new StoragePolicy(["/dev"]);
        Assert.Contains("is a character device, not a regular file", Refused(StorageRule.NotARegularFile, () => devDir.OpenFile("/dev/null", null)).Message);
    }

    [Fact]
    public void RegularFileAsBlock_IsRefused_EvenWhenAllowListed()
    {
        File.WriteAllBytes(In("fake-disk"), new byte[1 << 20]);
        var e = Refused(StorageRule.NotABlockDevice, () => Policy(In("fake-disk")).OpenBlockDevice(In("fake-disk")));
        Assert.Equal($"block namespace '{In("fake-disk")}' is a regular file, not a block device; a block namespace needs a block device " +
            "(a file belongs in a file namespace, inside a storage directory)", e.Message);
        // Not in the allow-list: refused before anything else is looked at.
        var notAllowed = Refused(StorageRule.BlockDeviceNotAllowed, () => Policy().OpenBlockDevice(In("fake-disk")));
        Assert.Contains("is not in the allowed block devices (none are allowed); allow it with --allow-block-device", notAllowed.Message);
        Assert.Equal(1 << 20, new FileInfo(In("fake-disk")).Length); // untouched
    }

    [Fact]
    public async Task LoopDevice_ServesAsABlockNamespace_WhenAllowed_AndIsRefusedOtherwise()
    {
        using var loop = LoopDevice.Create(16L << 20);
        // Allowed through a link (as /dev/disk/by-id names are): the real paths are compared.
        File.CreateSymbolicLink(In("by-id-disk"), loop.Device);
        var e = Refused(StorageRule.BlockDeviceNotAllowed, () => Policy().OpenBlockDevice(loop.Device));
        Assert.Contains($"block device '{loop.Device}' is not in the allowed block devices (none are allowed); allow it with --allow-block-device {loop.Device}", e.Message);
        Refused(StorageRule.BlockDeviceNotAllowed, () => Policy("/dev/loop-does-not-exist").OpenBlockDevice(loop.Device));
        // A block device is not a file namespace, even in an allowed directory.
        Assert.Contains("is a block device, not a regular file; a device is a block namespace",
            Refused(StorageRule.NotARegularFile, () => new StoragePolicy(["/dev"]).OpenFile(loop.Device, null)).Message);

        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Storage = new StorageConfig { BlockDevices = [In("by-id-disk")] };
            c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "block", Path = loop.Device });
        });
        var store = Assert.IsType<FileBlockStore>(target.Host.Target.FindSubsystem(TestTarget.Nqn)!.GetNamespace(2)!.Store);
        Assert.True(store.IsBlockDevice);
        Assert.Equal(16L << 20, store.Length);
        await using var host = await target.ConnectWithIoAsync(1);
        var id = await host.IdentifyAsync(IdentifyCns.Namespace, 2);
        Assert.Equal((16UL << 20) / 512, BitConverter.ToUInt64(id, 0));
        var data = TestData.Random(64 * 1024, 9);
        (await host.WriteAsync(0, 2, 2048, data)).EnsureSuccess();
        var back = new byte[data.Length];
        (await host.ReadAsync(0, 2, 2048, back)).EnsureSuccess();
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task StartUp_RefusesWhatThePolicyForbids_BeforeListening()
    {
        var cl = CommandLine.Parse(["--namespace", "file:/etc/shadow", "--namespace", "file:disk.img:1M", "--storage-dir", Storage, "--api", "off"], new Dictionary<string, string>());
        Assert.Empty(cl.Errors);
        var errors = cl.Storage.Validate(cl.Config);
        Assert.Equal([$"subsystem {CommandLine.DefaultNqn} namespace 1: file namespace '/etc/shadow' is outside the storage directories ({Storage}); allow its directory with --storage-dir DIR or storage.directories"],
            errors);
        // The host refuses it too (the same code opens the stores), and closes what it had opened.
        await Assert.ThrowsAsync<StoragePolicyException>(() => TestTarget.StartAsync(output, c =>
        {
            c.Storage = new StorageConfig { Directories = [Storage] };
            c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "file", Path = "ok.img", Size = "1M" });
            c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 3, Backend = "file", Path = "/etc/shadow" });
        }));
    }

    [Fact]
    public void Defaults_AndOptions()
    {
        var none = new Dictionary<string, string>();
        Assert.Equal("/var/lib/nvme-tcp-target", StoragePolicy.DefaultDirectory(null, none, root: true));
        Assert.Equal("/var/lib/nvme-tcp-target", StoragePolicy.DefaultDirectory("/etc/nvme-tcp-target/target.json", none, root: true));
        Assert.Equal("/etc/nvme-tcp-target", StoragePolicy.DefaultDirectory("/etc/nvme-tcp-target/target.json", none, root: false));
        Assert.Equal("/x/state/nvme-tcp-target", StoragePolicy.DefaultDirectory(null, new Dictionary<string, string> { ["XDG_STATE_HOME"] = "/x/state", ["HOME"] = "/home/u" }, root: false));
        Assert.Equal("/home/u/.local/state/nvme-tcp-target", StoragePolicy.DefaultDirectory(null, new Dictionary<string, string> { ["HOME"] = "/home/u" }, root: false));
        Assert.Equal("/home/u/.local/state/nvme-tcp-target", StoragePolicy.DefaultDirectory(null, new Dictionary<string, string> { ["XDG_STATE_HOME"] = "rel", ["HOME"] = "/home/u" }, root: false));
        var d = StoragePolicy.Create(null, null, none);
        Assert.True(d.IsDefault);
        Assert.Empty(d.BlockDevices);

        // The environment's lists are ':'-separated; the command line replaces them; neither goes into the file's config.
        var env = new Dictionary<string, string> { ["NVMET_STORAGE_DIRS"] = "/srv/a:/srv/b", ["NVMET_BLOCK_DEVICES"] = "/dev/sdx:/dev/sdy" };
        var fromEnv = CommandLine.Parse([], env);
        Assert.Equal(["/srv/a", "/srv/b"], fromEnv.Storage.Directories);
        Assert.Equal(["/dev/sdx", "/dev/sdy"], fromEnv.Storage.BlockDevices);
        Assert.False(fromEnv.Storage.IsDefault);
        var fromCli = CommandLine.Parse(["--storage-dir", "/srv/c", "--storage-dir", "rel", "--allow-block-device", "/dev/sdz"], env);
        Assert.Equal(["/srv/c", Path.Join(Environment.CurrentDirectory, "rel")], fromCli.Storage.Directories);
        Assert.Equal(["/dev/sdz"], fromCli.Storage.BlockDevices);

        // In the file, relative directories are relative to the file's directory.
        var file = In("target.json");
        File.WriteAllText(file, """{ "storage": { "directories": [ "data", "/srv/abs" ], "blockDevices": [ "/dev/sdq" ] }, "subsystems": [ { "nqn": "nqn.2026-01.io.example:a" } ] }""");
        var fromFile = CommandLine.Parse(["--config", file], none);
        Assert.Empty(fromFile.Errors);
        Assert.Equal([In("data"), "/srv/abs"], fromFile.Storage.Directories);
        Assert.Equal(["/dev/sdq"], fromFile.Storage.BlockDevices);
    }

    [Fact]
    public void DefaultDirectory_IsCreatedPrivate_WhenAFileGoesThere()
    {
        var env = new Dictionary<string, string> { ["XDG_STATE_HOME"] = In("state") };
        var policy = StoragePolicy.Create(null, null, env, root: false);
        Assert.Equal([In("state/nvme-tcp-target")], policy.Directories);
        using (var store = policy.OpenFile("disk.img", 1 << 20)) Assert.Equal(In("state/nvme-tcp-target/disk.img"), store.RealPath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(In("state/nvme-tcp-target")));
        // A configured directory is never created: it must exist.
        Assert.Throws<StoreException>(() => new StoragePolicy([In("configured")]).OpenFile("disk.img", 1 << 20));
        Assert.False(Directory.Exists(In("configured")));
    }
}
