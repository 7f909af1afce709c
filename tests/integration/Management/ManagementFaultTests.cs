using System.Net;
using System.Text.Json;
using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>Fault injection through the management API and the CLI, against a host on a real TCP connection: I/O
/// errors on a range, written-but-reported-failed, counts, stalls released by a clear, connection faults (drop, C2HTermReq,
/// a wrong data digest), events and write protection on demand, and the problem details of bad requests.</summary>
public sealed class ManagementFaultTests(ITestOutputHelper output)
{
    private const ushort UreDnr = 0x4281, WriteFault = 0x0280;

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public async Task Api_IoFaults_HitTheirRangeCountAndClear()
    {
        await using var t = await ApiTarget.StartAsync(output);
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        var data = Pattern(16 * 512, 1);
        (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess("write");

        var f = await t.Http.PostJsonAsync("faults", new
        {
            subsystem = ApiTarget.Nqn, nsid = 1, opcodes = new[] { "read" }, lbaFirst = 0, lbaLast = 7,
            action = "error", status = "unrecovered-read-error", dnr = true,
        }, HttpStatusCode.Created);
        int id = f.GetProperty("id").GetInt32();
        Assert.Equal(("unrecovered-read-error", 2, 0x81, true), (f.GetProperty("status").GetString(), f.GetProperty("sct").GetInt32(),
            f.GetProperty("sc").GetInt32(), f.GetProperty("dnr").GetBoolean()));

        var buf = new byte[8 * 512];
        Assert.Equal(UreDnr, (await host.ReadAsync(0, 1, 0, buf)).Status);
        Assert.Equal(UreDnr, (await host.ReadAsync(0, 1, 4, buf)).Status); // 4..11 overlaps 0..7
        (await host.ReadAsync(0, 1, 8, buf)).EnsureSuccess("read outside the range");
        Assert.Equal(data.AsSpan(8 * 512, 8 * 512).ToArray(), buf);
        (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess("a write is not matched");
        var got = await t.Http.GetJsonAsync($"faults/{id}");
        Assert.Equal((2L, 2L), (got.GetProperty("matched").GetInt64(), got.GetProperty("fired").GetInt64()));

        // Written but reported failed, the next 2 writes only.
        var w = await t.Http.PostJsonAsync("faults", new { subsystem = ApiTarget.Nqn, opcodes = new[] { "write" }, count = 2, action = "error", status = "write-fault", afterExecute = true },
            HttpStatusCode.Created);
        var fresh = Pattern(8 * 512, 2);
        Assert.Equal(WriteFault, (await host.WriteAsync(0, 1, 100, fresh)).Status);
        Assert.Equal(WriteFault, (await host.WriteAsync(0, 1, 100, fresh)).Status);
        (await host.WriteAsync(0, 1, 100, fresh)).EnsureSuccess("the third write");
        (await host.ReadAsync(0, 1, 100, buf)).EnsureSuccess("read back");
        Assert.Equal(fresh, buf);
        await t.Http.ProblemAsync(HttpMethod.Get, $"faults/{w.GetProperty("id").GetInt32()}", null, HttpStatusCode.NotFound, "is not set"); // used up

        // The metrics count firings by action.
        var metrics = await t.Probes!.GetStringAsync("/metrics");
        Assert.Contains("nvmet_faults_fired_total{action=\"error\"} 4", metrics);

        await t.Http.DeleteOkAsync($"faults/{id}");
        (await host.ReadAsync(0, 1, 0, buf)).EnsureSuccess("read after the clear");
        Assert.Equal(0, (await t.Http.GetJsonAsync("faults")).GetArrayLength());
    }

    [Fact]
    public async Task Api_Stall_HoldsUntilCleared_OthersGoOn()
    {
        await using var t = await ApiTarget.StartAsync(output);
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        await t.Http.PostJsonAsync("faults", new { subsystem = ApiTarget.Nqn, nsid = 1, opcodes = new[] { "write" }, action = "stall" }, HttpStatusCode.Created);
        var data = Pattern(4096, 3);
        var stalled = host.WriteAsync(0, 1, 50, data);
        await WaitAsync(async () => (await t.Http.GetJsonAsync("faults")).EnumerateArray().First().GetProperty("stalled").GetInt64() == 1, "the write stalls");
        (await host.ReadAsync(0, 1, 0, new byte[4096])).EnsureSuccess("a read while a write is stalled");
        Assert.False(stalled.IsCompleted);
        using (var cleared = await t.Http.DeleteAsync("faults"))
            Assert.Equal(1, (await Api.ReadJsonAsync(cleared, HttpStatusCode.OK)).GetProperty("cleared").GetInt32());
        (await stalled).EnsureSuccess("the released write");
        var buf = new byte[4096];
        (await host.ReadAsync(0, 1, 50, buf)).EnsureSuccess("read back");
        Assert.Equal(data, buf);
    }

    [Fact]
    public async Task Api_ConnectionFaults_DropTermReqDigest()
    {
        await using var t = await ApiTarget.StartAsync(output);
        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            var r = await t.Http.PostJsonAsync("faults/connections", new { host = new NvmeTcpHostOptions().HostNqn, queue = 1, action = "drop" }, HttpStatusCode.OK);
            Assert.Equal(1, r.GetProperty("connections").GetArrayLength());
            await Assert.ThrowsAnyAsync<Exception>(() => host.ReadAsync(0, 1, 0, new byte[512]));
        }
        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            await t.Http.PostJsonAsync("faults/connections", new { subsystem = ApiTarget.Nqn, queue = 1, action = "terminate" }, HttpStatusCode.OK);
            var e = await Assert.ThrowsAnyAsync<Exception>(() => host.ReadAsync(0, 1, 0, new byte[512]));
            output.WriteLine($"after C2HTermReq: {e.GetType().Name}: {e.Message}");
            // Without data digests there is no digest to corrupt.
        }
        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            await t.Http.ProblemAsync(HttpMethod.Post, "faults/connections", new { subsystem = ApiTarget.Nqn, action = "corrupt-data-digest" },
                HttpStatusCode.Conflict, "data digests");
        }
        await using (var host = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, new NvmeTcpHostOptions { DataDigest = true }))
        {
            await host.CreateIoQueuesAsync(1);
            (await host.ReadAsync(0, 1, 0, new byte[512])).EnsureSuccess("read with data digests");
            await t.Http.PostJsonAsync("faults/connections", new { subsystem = ApiTarget.Nqn, queue = 1, action = "corrupt-data-digest" }, HttpStatusCode.OK);
            var e = await Assert.ThrowsAsync<NvmeTcpProtocolException>(() => host.ReadAsync(0, 1, 0, new byte[512]));
            Assert.Contains("digest", e.Message, StringComparison.OrdinalIgnoreCase);
        }
        // Errors: no selector, nothing matches, a bad action, options of another action.
        await t.Http.ProblemAsync(HttpMethod.Post, "faults/connections", new { action = "drop" }, HttpStatusCode.BadRequest, "say which connections");
        await t.Http.ProblemAsync(HttpMethod.Post, "faults/connections", new { host = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000009", action = "drop" },
            HttpStatusCode.NotFound, "no connection matches");
        await t.Http.ProblemAsync(HttpMethod.Post, "faults/connections", new { subsystem = ApiTarget.Nqn, action = "explode" }, HttpStatusCode.BadRequest, "is not drop");
        await t.Http.ProblemAsync(HttpMethod.Post, "faults/connections", new { subsystem = ApiTarget.Nqn, action = "pause-receive" }, HttpStatusCode.BadRequest, "needs durationMs");
        await t.Http.ProblemAsync(HttpMethod.Post, "faults/connections", new { subsystem = ApiTarget.Nqn, action = "terminate", afterPdus = 3 }, HttpStatusCode.BadRequest, "belongs to the drop");
    }

    [Fact]
    public async Task Api_DropAfterPdus_ThenTheHostReconnectsAndDataIsThere()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var data = Pattern(8 * 512, 4);
        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            await t.Http.PostJsonAsync("faults/connections", new { subsystem = ApiTarget.Nqn, queue = 1, action = "drop", afterPdus = 3 }, HttpStatusCode.OK);
            for (int i = 0; i < 2; i++) (await host.WriteAsync(0, 1, (ulong)(8 * i), data)).EnsureSuccess($"write {i}");
            await Assert.ThrowsAnyAsync<Exception>(async () =>
            {
                for (int i = 0; i < 5; i++) (await host.ReadAsync(0, 1, 0, new byte[512])).EnsureSuccess("read");
            });
        }
        await using (var again = await t.ConnectAsync())
        {
            await again.CreateIoQueuesAsync(1);
            var buf = new byte[8 * 512];
            (await again.ReadAsync(0, 1, 8, buf)).EnsureSuccess("read after reconnecting");
            Assert.Equal(data, buf);
        }
        var metrics = await t.Probes!.GetStringAsync("/metrics");
        Assert.Contains("nvmet_tcp_faults_injected_total", metrics);
    }

    [Fact]
    public async Task Api_WriteProtectAndEvents()
    {
        await using var t = await ApiTarget.StartAsync(output);
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        var wp = await t.Http.PutJsonAsync($"{Api.Sub()}/namespaces/1/write-protect", new { writeProtected = true }, HttpStatusCode.OK);
        Assert.Equal(1, wp.GetProperty("controllersNotified").GetInt32());
        Assert.True((await t.Http.GetJsonAsync($"{Api.Sub()}/namespaces/1")).GetProperty("writeProtected").GetBoolean());
        Assert.Equal(1, (await host.IdentifyAsync(0, 1))[99]);
        Assert.Equal(0x4020, (await host.WriteAsync(0, 1, 0, new byte[512])).Status);
        await t.Http.PutJsonAsync($"{Api.Sub()}/namespaces/1/write-protect", new { writeProtected = false }, HttpStatusCode.OK);
        (await host.WriteAsync(0, 1, 0, new byte[512])).EnsureSuccess("write after write protection ends");

        var ev = await t.Http.PostJsonAsync($"{Api.Sub()}/events", new { type = "namespace-changed", nsid = 1 }, HttpStatusCode.OK);
        Assert.Equal(1, ev.GetProperty("controllersNotified").GetInt32());
        await t.Http.ProblemAsync(HttpMethod.Post, $"{Api.Sub()}/events", new { type = "ana-change", nsid = 1 }, HttpStatusCode.BadRequest, "takes no nsid");
        await t.Http.ProblemAsync(HttpMethod.Post, $"{Api.Sub()}/events", new { type = "namespace-changed", nsid = 9 }, HttpStatusCode.NotFound, "namespace 9");
    }

    [Fact]
    public async Task Api_BadFaults_AreProblems()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var ok = new Dictionary<string, object?> { ["subsystem"] = ApiTarget.Nqn, ["action"] = "error", ["status"] = "write-fault" };
        async Task Bad(string key, object? value, HttpStatusCode code, string detail)
        {
            var body = new Dictionary<string, object?>(ok) { [key] = value };
            await t.Http.ProblemAsync(HttpMethod.Post, "faults", body, code, detail);
        }
        await Bad("action", "explode", HttpStatusCode.BadRequest, "is not error, delay or stall");
        await Bad("status", "bad-luck", HttpStatusCode.BadRequest, "is not a status name");
        await Bad("status", "0:0", HttpStatusCode.BadRequest, "is not a status name");
        await Bad("probability", 1.5, HttpStatusCode.BadRequest, "probability");
        await Bad("opcodes", new[] { "format" }, HttpStatusCode.BadRequest, "opcode 'format'");
        await Bad("delayMs", 5, HttpStatusCode.BadRequest, "belong to a delay fault");
        await Bad("subsystem", "nqn.2026-01.io.example:none", HttpStatusCode.NotFound, "does not exist");
        await Bad("nsid", 9, HttpStatusCode.NotFound, "namespace 9");
        await Bad("queue", 0, HttpStatusCode.BadRequest, "admin queue");
        { var body = new Dictionary<string, object?>(ok) { ["lbaFirst"] = 10 }; await t.Http.PostJsonAsync("faults", body, HttpStatusCode.Created); } // sanity: a valid variant is accepted (cleared below)
        await t.Http.ProblemAsync(HttpMethod.Delete, "faults/77", null, HttpStatusCode.NotFound, "fault 77 is not set");
        Assert.Equal(1, (await t.Http.GetJsonAsync("faults")).GetArrayLength());
        using var r = await t.Http.DeleteAsync("faults");
        Assert.Equal(1, (await Api.ReadJsonAsync(r, HttpStatusCode.OK)).GetProperty("cleared").GetInt32());
    }

    [Fact]
    public async Task Cli_FaultAddListRemove()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var (code, stdout, stderr) = await Cli.RunAsync("fault", "add", "--nsid", "1", "--opcode", "read,write", "--lba", "0-2047", "--probability", "1%",
            "--error", "unrecovered-read-error", "--dnr", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("Set fault 1:", stdout);
        Assert.Contains("probability 0.01", stdout);
        var rule = Assert.Single(t.Host.Target.Faults.Rules);
        Assert.Equal(0.01, rule.Spec.Probability);
        Assert.Equal(2047ul, rule.Spec.LastLba);

        (code, stdout, _) = await Cli.RunAsync("fault", "list", "--api", t.ApiUrl);
        Assert.Equal(0, code);
        Assert.Contains("unrecovered_read_error", stdout.Replace("UnrecoveredReadError", "unrecovered_read_error"));

        (code, _, stderr) = await Cli.RunAsync("fault", "add", "--nsid", "1", "--delay", "5", "--stall", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("exactly one of", stderr);
        (code, _, stderr) = await Cli.RunAsync("fault", "add", "--nsid", "1", "--error", "nope", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("is not a status name", stderr);
        (code, _, stderr) = await Cli.RunAsync("fault", "connection", "--action", "drop", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("say which connections", stderr);

        (code, stdout, _) = await Cli.RunAsync("fault", "remove", "--id", "1", "--api", t.ApiUrl);
        Assert.Equal(0, code);
        Assert.Empty(t.Host.Target.Faults.Rules);
        (code, _, stderr) = await Cli.RunAsync("fault", "remove", "--id", "1", "--api", t.ApiUrl);
        Assert.Equal(1, code);
        Assert.Contains("fault 1 is not set", stderr);

        var (helpCode, help, _) = await Cli.RunAsync("fault", "--help");
        Assert.Equal(0, helpCode);
        Assert.Contains("write-protect", help);
    }

    [Fact]
    public async Task Config_FaultsApplyAtStart_BadOnesAreRefused()
    {
        var config = Integration.Tests.InProcess.TestTarget.DefaultConfig();
        config.Faults =
        [
            new() { Subsystem = ApiTarget.Nqn, Nsid = 1, Opcodes = ["read"], LbaFirst = 0, LbaLast = 0, Action = "error", Status = "2:81", Dnr = true },
        ];
        await using (var t = await ApiTarget.StartAsync(output, config))
        {
            await using var host = await t.ConnectAsync();
            await host.CreateIoQueuesAsync(1);
            Assert.Equal(UreDnr, (await host.ReadAsync(0, 1, 0, new byte[512])).Status);
            (await host.ReadAsync(0, 1, 1, new byte[512])).EnsureSuccess("read of LBA 1");
            var f = Assert.Single((await t.Http.GetJsonAsync("faults")).EnumerateArray());
            Assert.Equal("unrecovered-read-error", f.GetProperty("status").GetString());
        }

        var bad = Integration.Tests.InProcess.TestTarget.DefaultConfig();
        bad.Faults =
        [
            new() { Subsystem = ApiTarget.Nqn, Action = "delay" },
            new() { Subsystem = "nqn.2026-01.io.example:none", Action = "stall" },
            new() { Subsystem = ApiTarget.Nqn, Action = "error", Status = "bad-luck" },
        ];
        var errors = Target.Configuration.ConfigValidator.Validate(bad);
        Assert.Contains(errors, e => e.StartsWith("faults[0]: a delay fault needs delayMs", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("faults[1]: subsystem nqn.2026-01.io.example:none is not in 'subsystems'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("faults[2]: status 'bad-luck' is not a status name", StringComparison.Ordinal));
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20); // a liveness bound, not a timing assertion
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for: {what}");
            await Task.Delay(20);
        }
    }
}
