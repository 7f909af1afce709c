namespace Integration.Tests.Program;

/// <summary>The storage policy and the memory namespace limit at start, with the real executable: refusals exit 2,
/// one line each, before anything listens.</summary>
public sealed partial class ProgramTests
{
    [Fact]
    public async Task StoragePolicy_RefusesAtStart_OneLinePerRefusal_BeforeListening()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-prog-policy-");
        try
        {
            var fake = Path.Combine(dir.FullName, "fake-disk");
            await File.WriteAllBytesAsync(fake, new byte[1 << 20]);
            File.CreateSymbolicLink(Path.Combine(dir.FullName, "evil.img"), "/etc/shadow");
            var config = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(config, $$"""
                {
                  "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
                  "storage": { "directories": [ "." ], "blockDevices": [ "fake-disk" ] },
                  "subsystems": [
                    { "nqn": "nqn.2026-01.io.example:a", "allowAnyHost": true,
                      "namespaces": [ { "nsid": 1, "backend": "file", "path": "/etc/shadow" },
                                      { "nsid": 2, "backend": "file", "path": "evil.img" },
                                      { "nsid": 3, "backend": "block", "path": "{{fake}}" },
                                      { "nsid": 4, "backend": "block", "path": "/dev/null" },
                                      { "nsid": 5, "backend": "file", "path": "fine.img", "size": "1M" } ] }
                  ]
                }
                """);
            var (code, stdout, err) = await RunAsync("--config", config, "--api", "off");
            Assert.Equal(2, code);
            var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Contains($"error: subsystem nqn.2026-01.io.example:a namespace 1: file namespace '/etc/shadow' is outside the storage directories ({dir.FullName}); " +
                "allow its directory with --storage-dir DIR or storage.directories", lines);
            Assert.Single(lines, l => l.StartsWith("error: subsystem nqn.2026-01.io.example:a namespace 2: file namespace 'evil.img' resolves to '/etc/shadow'", StringComparison.Ordinal));
            Assert.Single(lines, l => l.StartsWith("error: subsystem nqn.2026-01.io.example:a namespace 3: ", StringComparison.Ordinal) && l.Contains("is a regular file, not a block device"));
            Assert.Single(lines, l => l.StartsWith("error: subsystem nqn.2026-01.io.example:a namespace 4: block device '/dev/null' is not in the allowed block devices", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.Contains("namespace 5"));
            Assert.DoesNotContain("Listening", stdout);
            Assert.False(File.Exists(Path.Combine(dir.FullName, "fine.img"))); // nothing was created either
            Assert.Equal(1 << 20, new FileInfo(fake).Length);
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task StoragePolicy_EtcShadowOnTheCommandLine_Exits2()
    {
        var (code, _, err) = await RunAsync("--namespace", "file:/etc/shadow", "--api", "off");
        Assert.Equal(2, code);
        Assert.Contains("file namespace '/etc/shadow' is outside the storage directories (", err);
        Assert.Contains("allow its directory with --storage-dir DIR or storage.directories", err);
    }
    [Theory]
    [InlineData(new[] { "--memory-namespaces", "64M", "--namespace", "memory:32M", "--namespace", "memory:48M" },
        "error: memory namespaces would take 80 MiB of RAM together, more than the limit of 64 MiB (limits.memoryNamespaces or --memory-namespaces SIZE")]
    [InlineData(new[] { "--namespace", "memory:16T" }, "more than the limit of ")] // the default: 3/4 of this machine's memory
    [InlineData(new[] { "--memory-namespaces", "lots" }, "limits.memoryNamespaces 'lots' is not a size")]
    public async Task MemoryNamespaces_PastTheLimit_Exit2(string[] args, string message)
    {
        var (code, stdout, err) = await RunAsync([.. args, "--api", "off"]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.DoesNotContain("Listening", stdout);
    }
    [Fact]
    public async Task Help_DocumentsTheStorageOptions()
    {
        var (code, output, _) = await RunAsync("--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--storage-dir DIR", "NVMET_STORAGE_DIRS", "--allow-block-device DEV", "NVMET_BLOCK_DEVICES",
                     "--memory-namespaces SIZE", "NVMET_MEMORY_NAMESPACES", ",prealloc", "/var/lib/nvme-tcp-target" })
            Assert.Contains(option, output);
    }
}
