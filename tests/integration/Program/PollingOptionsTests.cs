using System.Collections;
using Target;
using Target.Configuration;

namespace Integration.Tests.Program;

/// <summary>The polling mode's options (issue 11): off by default; --poll, --reactors, --reactor-cpus and --poll-idle
/// (and their environment variables and the file's "polling") reach the transport; bad values are refused at start
/// with one clear message and exit code 2.</summary>
public sealed class PollingOptionsTests
{
    [Fact]
    public void Default_IsEventDriven()
    {
        var cl = CommandLine.Parse([], new Hashtable());
        Assert.Empty(cl.Errors);
        Assert.Null(cl.Config.Polling);
        Assert.Null(TargetHost.Polling(cl.Config.Polling));
    }

    [Fact]
    public void Poll_AloneGivesOneUnpinnedReactorSpinningTenMilliseconds()
    {
        var cl = CommandLine.Parse(["--poll"], new Hashtable());
        Assert.Empty(cl.Errors);
        var p = TargetHost.Polling(cl.Config.Polling)!;
        Assert.Equal((1, 0, TimeSpan.FromMilliseconds(10)), (p.Reactors, p.Cpus.Count, p.IdleTime));
    }

    [Fact]
    public void CommandLine_Environment_AndConfigFile_SetThePollingMode_CommandLineWinning()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """
                { "subsystems": [ { "nqn": "nqn.2026-01.io.example:a", "allowAnyHost": true } ],
                  "polling": { "enabled": true, "reactors": 3, "cpus": [1, 0, 1], "idleMicroseconds": 2000 } }
                """);
            var fromFile = CommandLine.Parse(["--config", file], new Hashtable());
            Assert.Empty(fromFile.Errors);
            Assert.Empty(ConfigValidator.Validate(fromFile.Config));
            var f = TargetHost.Polling(fromFile.Config.Polling)!;
            Assert.Equal((3, "1,0,1", TimeSpan.FromMilliseconds(2)), (f.Reactors, string.Join(",", f.Cpus), f.IdleTime));

            var both = CommandLine.Parse(["--config", file, "--reactors", "2", "--poll-idle", "500"], new Hashtable { ["NVMET_REACTOR_CPUS"] = "0" });
            Assert.Empty(both.Errors);
            var b = TargetHost.Polling(both.Config.Polling)!;
            Assert.Equal((2, "0", TimeSpan.FromMicroseconds(500)), (b.Reactors, string.Join(",", b.Cpus), b.IdleTime));

            var env = CommandLine.Parse([], new Hashtable { ["NVMET_POLL"] = "1", ["NVMET_REACTORS"] = "2" });
            Assert.Empty(env.Errors);
            Assert.Equal(2, TargetHost.Polling(env.Config.Polling)!.Reactors);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void ReactorSettings_WithoutPoll_AreAnError()
    {
        var cl = CommandLine.Parse(["--reactors", "2"], new Hashtable());
        Assert.Contains("--reactors, --reactor-cpus and --poll-idle belong to the polling mode: add --poll", cl.Errors);
    }

    [Theory]
    [InlineData(new[] { "--poll", "--reactors", "0" }, "polling.reactors 0 is outside 1..256")]
    [InlineData(new[] { "--poll", "--reactors", "two" }, "--reactors 'two' is not a number")]
    [InlineData(new[] { "--poll", "--reactor-cpus", "0,x" }, "--reactor-cpus '0,x' is not a comma-separated list of CPU numbers")]
    [InlineData(new[] { "--poll", "--reactor-cpus", "4096" }, "polling.cpus: CPU 4096 does not exist")]
    [InlineData(new[] { "--poll", "--poll-idle", "-1" }, "--poll-idle '-1' is not a number")]
    [InlineData(new[] { "--poll", "--poll-idle", "20000000" }, "polling.idleMicroseconds 20000000 is outside 0..10000000")]
    [InlineData(new[] { "--poll-idle", "100" }, "belong to the polling mode: add --poll")]
    public async Task BadPollingOptions_ExitWithCode2AndAClearMessage(string[] args, string message)
    {
        var (code, _, err) = await TargetProcess.RunAsync(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public async Task Help_DocumentsThePollingModeAndItsCpuCost()
    {
        var (code, output, _) = await TargetProcess.RunAsync("--help");
        Assert.Equal(0, code);
        foreach (var text in new[] { "--poll", "--reactors", "--reactor-cpus", "--poll-idle", "NVMET_POLL", "NVMET_REACTORS",
                     "NVMET_REACTOR_CPUS", "NVMET_POLL_IDLE", "one core busy" })
            Assert.Contains(text, output);
    }
}
