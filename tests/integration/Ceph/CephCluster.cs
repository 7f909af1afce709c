using System.Diagnostics;
using Integration.Tests.LinuxHost;

namespace Integration.Tests.Ceph;

/// <summary>
/// A single-node Ceph cluster (Debian's Ceph 16.2: one monitor and one memstore OSD, no manager) on loopback, started
/// by tests/integration/ceph/ceph-up.sh into a fresh directory with ports of its own, with an initialised "rbd" pool;
/// stopped and removed (ceph-down.sh) when the tests are done, also when they fail or start fails. The Ceph packages
/// are test prerequisites (test.sh installs them): missing, the start fails and says so.
/// </summary>
public sealed class CephCluster : IAsyncLifetime
{
    private static string Scripts => Path.Combine(GuestVm.RepoRoot, "tests", "integration", "ceph");

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), $"nvmet-ceph-{Environment.ProcessId}");
    public string Conf => Path.Combine(Directory, "ceph.conf");
    public string AdminKeyring => Path.Combine(Directory, "ceph.client.admin.keyring");
    public const string Pool = "rbd";
    public string StartLog { get; private set; } = "";

    public async Task InitializeAsync()
    {
        if (System.IO.Directory.Exists(Directory)) await RunAsync(Path.Combine(Scripts, "ceph-down.sh"), TimeSpan.FromSeconds(60));
        // Ports of this run's own (two test runs never share a monitor); loopback only.
        int basePort = 21000 + Environment.ProcessId % 4000 * 2;
        var (code, output) = await RunAsync(Path.Combine(Scripts, "ceph-up.sh"), TimeSpan.FromMinutes(4),
            ("WITH_MGR", "0"), ("MON_PORT_V2", basePort.ToString()), ("MON_PORT_V1", (basePort + 1).ToString()));
        StartLog = output;
        if (code != 0)
        {
            await DisposeAsync();
            throw new InvalidOperationException($"the single-node Ceph cluster did not start (ceph-up.sh exited {code}; test.sh installs " +
                $"ceph-mon ceph-osd ceph-common):\n{output}");
        }
    }

    public async Task DisposeAsync() => await RunAsync(Path.Combine(Scripts, "ceph-down.sh"), TimeSpan.FromSeconds(60));

    /// <summary>Runs a Ceph command line tool (rbd, ceph, rados) against this cluster; returns its exit code and output.</summary>
    public Task<(int Code, string Output)> ToolAsync(string tool, params string[] args) =>
        RunAsync(tool, TimeSpan.FromMinutes(2), [], args);

    private Task<(int Code, string Output)> RunAsync(string file, TimeSpan timeout, params (string Name, string Value)[] env) =>
        RunAsync(file, timeout, env, []);

    private async Task<(int Code, string Output)> RunAsync(string file, TimeSpan timeout, (string Name, string Value)[] env, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["CEPH_DIR"] = Directory;
        psi.Environment["CEPH_CONF"] = Conf;
        foreach (var (n, v) in env) psi.Environment[n] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file} did not finish within {timeout.TotalSeconds:0} s\n{await stdout}{await stderr}");
        }
        return (p.ExitCode, await stdout + await stderr);
    }
}

[CollectionDefinition(Name)]
public sealed class CephCollection : ICollectionFixture<CephCluster>
{
    public const string Name = "Ceph";
}
