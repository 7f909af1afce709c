using System.Net;
using System.Text.Json;
using Integration.Tests.Initiator;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>Wire traces through the management API and the CLI, of real TCP connections: the pcapng file decodes in
/// tshark's NVMe/TCP dissector with no malformed packet and every PDU type the session used, only the selected host's
/// connections are in it (its I/O queues connected after the start included), a trace started on open connections
/// starts at PDU boundaries, truncation keeps headers, the size bound stops it, and bad requests say what is wrong.</summary>
public sealed class WireTraceTests(ITestOutputHelper output) : IDisposable
{
    private const string HostA = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001";
    private const string HostB = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-000000000002";
    private const int IcReq = 0, IcResp = 1, CapsuleCmd = 4, CapsuleResp = 5, H2CData = 6, C2HData = 7, R2T = 9;

    private readonly DirectoryInfo _storage = Directory.CreateTempSubdirectory("nvmet-trace-");
    private readonly List<string> _files = [];

    public void Dispose()
    {
        try { _storage.Delete(recursive: true); } catch (IOException) { }
        foreach (var f in _files) File.Delete(f);
    }

    private Task<ApiTarget> StartAsync()
    {
        var config = Integration.Tests.InProcess.TestTarget.DefaultConfig();
        config.Storage = new StorageConfig { Directories = [_storage.FullName] };
        return ApiTarget.StartAsync(output, config);
    }

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Admin commands, an in-capsule write, a write through R2T and H2CData, and a read whose C2HData spans segments.</summary>
    private static async Task SessionAsync(NvmeTcpHost host, int seed)
    {
        await host.IdentifyAsync(1);
        var small = Pattern(4096, seed);
        (await host.WriteAsync(0, 1, 0, small, inCapsule: true)).EnsureSuccess("in-capsule write");
        var big = Pattern(128 * 1024, seed + 1);
        (await host.WriteAsync(0, 1, 8, big, inCapsule: false)).EnsureSuccess("R2T write");
        var back = new byte[big.Length];
        (await host.ReadAsync(0, 1, 8, back)).EnsureSuccess("read");
        Assert.Equal(big, back);
    }

    private async Task<string> DownloadAsync(ApiTarget t, int id)
    {
        using var r = await t.Http.GetAsync($"traces/{id}/file");
        Assert.True(r.IsSuccessStatusCode, $"download: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        Assert.Equal("application/x-pcapng", r.Content.Headers.ContentType?.MediaType);
        var file = Path.Combine(Path.GetTempPath(), $"trace-test-{Environment.ProcessId}-{id}-{Guid.NewGuid():N}.pcapng");
        _files.Add(file);
        await File.WriteAllBytesAsync(file, await r.Content.ReadAsByteArrayAsync());
        return file;
    }

    [Fact]
    public async Task Trace_OfOneHost_DecodesInTshark_WithEveryPduType_AndNoOtherHost()
    {
        await using var t = await StartAsync();
        int port = t.Host.Endpoints[0].Port;
        var started = await t.Http.PostJsonAsync("traces", new { host = HostA }, HttpStatusCode.Created);
        int id = started.GetProperty("id").GetInt32();
        string path = started.GetProperty("path").GetString()!;
        Assert.Equal("running", started.GetProperty("state").GetString());
        Assert.Equal(Path.Combine(_storage.FullName, "traces"), Path.GetDirectoryName(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        await using (var a = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostA, HeaderDigest = true, DataDigest = true }))
        await using (var b = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostB }))
        {
            await a.CreateIoQueuesAsync(1); // connected after the trace started: traced from its ICReq on
            await b.CreateIoQueuesAsync(1);
            await SessionAsync(a, 1);
            await SessionAsync(b, 2);
        }
        Assert.True(await Poll.UntilAsync(() => t.Host.Manager.GetTrace(id).Connections == 2 && t.Host.ConnectionCount == 0, TimeSpan.FromSeconds(30)));

        var stopped = await t.Http.PostJsonAsync($"traces/{id}/stop", new { }, HttpStatusCode.OK);
        Assert.Equal(("stopped", "stopped"), (stopped.GetProperty("state").GetString(), stopped.GetProperty("stopReason").GetString()));
        Assert.Equal(2, stopped.GetProperty("connections").GetInt64()); // host A's admin and I/O queue, not host B's
        Assert.Equal(0, stopped.GetProperty("droppedBytes").GetInt64());

        var file = await DownloadAsync(t, id);
        Assert.Equal(new FileInfo(path).Length, new FileInfo(file).Length);
        Assert.Equal("", Tshark.Malformed(file, port));
        Assert.Equal("", Tshark.Run(file, port, "-Y", "tcp.analysis.flags || _ws.expert.severity >= warning").Trim()); // a clean TCP conversation
        var types = Tshark.PduTypes(file, port);
        foreach (var type in new[] { IcReq, IcResp, CapsuleCmd, CapsuleResp, H2CData, C2HData, R2T })
            Assert.True(types.Contains(type), $"PDU type {type} missing from the trace: {string.Join(",", types)}");
        Assert.Equal(2, types.Count(x => x == IcReq));
        // Digests were on for host A: the dissector found them, and right.
        Assert.False(string.IsNullOrWhiteSpace(Tshark.Run(file, port, "-Y", "nvme-tcp.hdgst")), "no header digests decoded");
        Assert.False(string.IsNullOrWhiteSpace(Tshark.Run(file, port, "-Y", "nvme-tcp.ddgst")), "no data digests decoded");
        var connects = Tshark.Run(file, port, "-Y", "nvme.fabrics.cmd.fctype == 0x01", "-T", "fields", "-e", "frame.number");
        Assert.Equal(2, connects.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // the admin and the I/O queue's Connect
        // Each connection's SYN names it; the handshake is no later than the connection's first PDU.
        var comments = Tshark.Run(file, port, "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment", "-e", "tcp.stream", "-e", "frame.time_epoch")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, comments.Length);
        Assert.All(comments, c => Assert.Contains($"host {HostA}, subsystem {ApiTarget.Nqn}", c));
        Assert.Contains(comments, c => c.Contains("queue 0")); Assert.Contains(comments, c => c.Contains("queue 1"));
        var firstIcReq = Tshark.Run(file, port, "-Y", "nvme-tcp.type == 0", "-T", "fields", "-e", "tcp.stream", "-e", "frame.time_epoch")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')).ToDictionary(f => f[0], f => decimal.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture));
        foreach (var c in comments.Select(l => l.Split('\t')))
            Assert.True(decimal.Parse(c[2], System.Globalization.CultureInfo.InvariantCulture) <= firstIcReq[c[1]], $"stream {c[1]}: SYN after its ICReq");
        var bytes = await File.ReadAllBytesAsync(file);
        Assert.Contains(HostA, System.Text.Encoding.ASCII.GetString(bytes)); // the Connect data names the host
        Assert.DoesNotContain(HostB, System.Text.Encoding.ASCII.GetString(bytes));
    }

    [Fact]
    public async Task Trace_StartedOnBusyConnections_StartsAtPduBoundaries()
    {
        await using var t = await StartAsync();
        int port = t.Host.Endpoints[0].Port;
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        using var stop = new CancellationTokenSource();
        long ios = 0;
        var load = Task.Run(async () =>
        {
            var data = Pattern(32 * 1024, 3);
            var buf = new byte[32 * 1024];
            while (!stop.IsCancellationRequested)
            {
                (await host.WriteAsync(0, 1, 64, data)).EnsureSuccess("write");
                (await host.ReadAsync(0, 1, 64, buf)).EnsureSuccess("read");
                Interlocked.Increment(ref ios);
            }
        });
        Assert.True(await Poll.UntilAsync(() => Interlocked.Read(ref ios) > 20, TimeSpan.FromSeconds(30)));
        var started = await t.Http.PostJsonAsync("traces", new { truncateData = 64 }, HttpStatusCode.Created); // every connection
        int id = started.GetProperty("id").GetInt32();
        long at = Interlocked.Read(ref ios);
        Assert.True(await Poll.UntilAsync(() => Interlocked.Read(ref ios) > at + 200, TimeSpan.FromSeconds(60)));
        var stopped = await t.Http.PostJsonAsync($"traces/{id}/stop", new { }, HttpStatusCode.OK);
        stop.Cancel();
        await load;
        Assert.Equal(2, stopped.GetProperty("connections").GetInt64()); // both queues were open: traced from the next PDU

        var file = await DownloadAsync(t, id);
        Assert.Equal("", Tshark.Malformed(file, port));
        Assert.Equal("", Tshark.Run(file, port, "-Y", "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment").Trim());
        var types = Tshark.PduTypes(file, port);
        Assert.DoesNotContain(IcReq, types); // started mid-connection
        Assert.True(types.Count(x => x == C2HData) >= 100, $"{types.Count(x => x == C2HData)} C2HData PDUs");
        Assert.True(types.Count(x => x == H2CData) >= 100, $"{types.Count(x => x == H2CData)} H2CData PDUs");
        // Truncated: a C2HData keeps its 24-byte header and 64 bytes of its 32 KiB.
        var lengths = Tshark.Run(file, port, "-Y", "nvme-tcp.type == 7", "-T", "fields", "-e", "nvme-tcp.plen").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lengths, l => Assert.Equal((24 + 32 * 1024).ToString(), l.Split(',')[0]));
        Assert.True(new FileInfo(file).Length < 200 * 32 * 1024 / 4, $"file of {new FileInfo(file).Length} bytes: data not truncated");
    }

    [Fact]
    public async Task Trace_StopsAtItsMaxSize_AndBadRequestsSayWhy()
    {
        await using var t = await StartAsync();
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { maxSize = "1k" }, HttpStatusCode.BadRequest, "from 64K to 4G");
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { file = "../escape" }, HttpStatusCode.BadRequest, "plain name");
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { subsystem = "nqn.2026-01.io.example:none" }, HttpStatusCode.NotFound, "does not exist");
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { truncateData = -1 }, HttpStatusCode.BadRequest, "truncateData");
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { durationSeconds = 0 }, HttpStatusCode.BadRequest, "durationSeconds");

        var small = await t.Http.PostJsonAsync("traces", new { maxSize = "64K", file = "small" }, HttpStatusCode.Created);
        int id = small.GetProperty("id").GetInt32();
        Assert.EndsWith("/traces/small.pcapng", small.GetProperty("path").GetString());
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { file = "small.pcapng" }, HttpStatusCode.Conflict, "exists");
        await t.Http.ProblemAsync(HttpMethod.Get, $"traces/{id}/file", null, HttpStatusCode.Conflict, "still running");
        for (int i = 0; i < 3; i++) await t.Http.PostJsonAsync("traces", new { host = "nqn.2014-08.org.nvmexpress:uuid:nobody" + i }, HttpStatusCode.Created);
        await t.Http.ProblemAsync(HttpMethod.Post, "traces", new { }, HttpStatusCode.Conflict, "4 wire traces are running");

        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            var buf = new byte[4096]; // the file fills a read's PDUs at a time: ~4.3 KiB each
            for (int i = 0; i < 100 && t.Host.Manager.GetTrace(id).State == "running"; i++) (await host.ReadAsync(0, 1, 0, buf)).EnsureSuccess("read");
        }
        Assert.True(await Poll.UntilAsync(() => t.Host.Manager.GetTrace(id).State == "stopped", TimeSpan.FromSeconds(30)));
        var info = await t.Http.GetJsonAsync($"traces/{id}");
        Assert.Equal("max-bytes", info.GetProperty("stopReason").GetString());
        Assert.True(await Poll.UntilAsync(() => File.Exists(info.GetProperty("path").GetString()!), TimeSpan.FromSeconds(5)));
        var file = await DownloadAsync(t, id);
        long size = new FileInfo(file).Length;
        Assert.InRange(size, 56 * 1024, 64 * 1024); // full up to less than one read's records
        Assert.Equal("", Tshark.Malformed(file, t.Host.Endpoints[0].Port));

        var list = await t.Http.GetJsonAsync("traces");
        Assert.Equal(4, list.GetArrayLength());
        await t.Http.DeleteOkAsync($"traces/{id}");
        Assert.False(File.Exists(info.GetProperty("path").GetString()));
        await t.Http.ProblemAsync(HttpMethod.Get, $"traces/{id}", null, HttpStatusCode.NotFound, "does not exist");
    }

    [Fact]
    public async Task Cli_StartsListsStopsAndDownloadsATrace()
    {
        await using var t = await StartAsync();
        var (code, stdout, stderr) = await Cli.RunAsync("trace", "start", "--host", HostA, "--truncate-data", "0", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("Started trace 1 into", stdout);
        await using (var a = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostA }))
        {
            await a.CreateIoQueuesAsync(1);
            await SessionAsync(a, 4);
        }
        (code, stdout, stderr) = await Cli.RunAsync("trace", "list", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("running", stdout);
        Assert.Contains("host " + HostA, stdout);

        var output = Path.Combine(_storage.FullName, "downloaded.pcapng");
        (code, stdout, stderr) = await Cli.RunAsync("trace", "stop", "--id", "1", "--output", output, "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("Stopped trace 1 (stopped)", stdout);
        var bytes = await File.ReadAllBytesAsync(output);
        Assert.Equal(new byte[] { 0x0A, 0x0D, 0x0D, 0x0A }, bytes[..4]); // a pcapng section header
        Assert.Equal("", Tshark.Malformed(output, t.Host.Endpoints[0].Port));

        (code, _, stderr) = await Cli.RunAsync("trace", "start", "--max-size", "lots", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("--max-size 'lots' is not a size", stderr);
        (code, _, stderr) = await Cli.RunAsync("trace", "get", "--id", "9", "--output", output, "--api", t.ApiUrl);
        Assert.Equal(1, code);
        Assert.Contains("trace 9 does not exist", stderr);
        (code, stdout, stderr) = await Cli.RunAsync("trace", "delete", "--id", "1", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Empty(Directory.GetFiles(Path.Combine(_storage.FullName, "traces")));
    }
}
