using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.Program;

/// <summary>Issue 10, finding 8: a second target started on the port of a running one must fail (exit code 2, a
/// clear message) instead of sharing the port through SO_REUSEPORT, and the first keeps its connections.</summary>
public sealed class ExclusivePortProgramTests(ITestOutputHelper output)
{
    private const string Nqn = "nqn.2026-01.io.nvmetcptarget:default";

    [Fact]
    public async Task SecondTargetOnAPortInUse_ExitsWithCode2_AndTheFirstKeepsServing()
    {
        await using var first = await LiveTarget.StartAsync(null, "--namespace", "memory:16M");
        Assert.False(first.Process.HasExited, "the first target did not start:\n" + first.Log);
        await using var host = await NvmeTcpHost.ConnectAsync(first.Endpoint, Nqn);
        await host.CreateIoQueuesAsync(1);
        var data = TestData.Random(64 * 1024, 8);
        (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess();

        await using var second = await LiveTarget.StartAsync(first.Port, "--namespace", "memory:16M");
        int code = await second.WaitForExitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine("second target:\n" + second.Log);
        Assert.Equal(2, code);
        Assert.Contains($"cannot listen on 127.0.0.1:{first.Port}", second.Log);
        Assert.Contains("in use", second.Log);
        Assert.DoesNotContain("   at ", second.Log); // a message, not a stack trace

        // The first target still has the connection, and the host's I/O goes on.
        var back = new byte[data.Length];
        (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(data, back);
        (await host.KeepAliveAsync()).EnsureSuccess();
        Assert.False(first.Process.HasExited);
        // New connections still reach the first target (no second listener took them).
        for (int i = 0; i < 4; i++)
        {
            await using var again = await NvmeTcpHost.ConnectAsync(first.Endpoint, Nqn);
            (await again.KeepAliveAsync()).EnsureSuccess();
        }
    }
}
