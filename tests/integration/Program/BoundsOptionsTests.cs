using System.Collections;
using System.Text.Json;
using Target;
using Target.Configuration;

namespace Integration.Tests.Program;

/// <summary>The resource bound options (issue 10): command line, environment and configuration file reach the core
/// limits and the transport options; bad values are refused at start with one clear message and exit code 2.</summary>
public sealed class BoundsOptionsTests
{
    [Fact]
    public void Defaults_AreTheDocumentedBounds()
    {
        var cl = CommandLine.Parse([], new Hashtable());
        Assert.Empty(cl.Errors);
        var t = TargetHost.TransportOptions(cl.Config.Limits);
        Assert.Equal(1024, t.MaxConnections);
        Assert.Equal(TimeSpan.FromSeconds(10), t.R2TTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), t.PduTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), t.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), t.TcpKeepAlive);
        using var target = TargetHost.BuildModel(cl.Config, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, cl.Storage);
        Assert.Equal(64, target.Limits.MaxControllersPerHost);
        Assert.Equal(50, target.Limits.HostBufferShare);
        Assert.Equal(32L << 20, target.DataBuffers.HostShare);
        foreach (var s in target.Subsystems) foreach (var ns in s.Namespaces) ns.Store.Dispose();
    }

    [Fact]
    public void CommandLine_Environment_AndConfigFile_SetTheBounds_CommandLineWinning()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """
                { "subsystems": [ { "nqn": "nqn.2026-01.io.example:a", "allowAnyHost": true } ],
                  "limits": { "maxConnections": 10, "maxControllersPerHost": 3, "hostBufferShare": 25, "r2tTimeout": 4,
                              "pduTimeout": 5.5, "connectTimeout": 6, "tcpKeepAlive": 120 } }
                """);
            var fromFile = CommandLine.Parse(["--config", file], new Hashtable());
            Assert.Empty(fromFile.Errors);
            var l = fromFile.Config.Limits;
            Assert.Equal((10, 3, 25), (l.MaxConnections, l.MaxControllersPerHost, l.HostBufferShare));
            var t = TargetHost.TransportOptions(l);
            Assert.Equal((10, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(5.5), TimeSpan.FromSeconds(6), (TimeSpan?)TimeSpan.FromSeconds(120)),
                (t.MaxConnections, t.R2TTimeout, t.PduTimeout, t.ConnectTimeout, t.TcpKeepAlive));

            var env = new Hashtable { ["NVMET_MAX_CONNECTIONS"] = "20", ["NVMET_TCP_KEEPALIVE"] = "off", ["NVMET_HOST_BUFFER_SHARE"] = "30%" };
            var both = CommandLine.Parse(["--config", file, "--max-connections", "30", "--r2t-timeout", "0.5", "--max-controllers-per-host", "7",
                "--pdu-timeout", "2", "--connect-timeout", "3"], env);
            Assert.Empty(both.Errors);
            var b = both.Config.Limits;
            Assert.Equal((30, 7, 30), (b.MaxConnections, b.MaxControllersPerHost, b.HostBufferShare));
            var bt = TargetHost.TransportOptions(b);
            Assert.Null(bt.TcpKeepAlive);
            Assert.Equal(TimeSpan.FromMilliseconds(500), bt.R2TTimeout);
            Assert.Equal(TimeSpan.FromSeconds(2), bt.PduTimeout);
            Assert.Equal(TimeSpan.FromSeconds(3), bt.ConnectTimeout);
            // The file keeps its form when written back.
            Assert.Contains("\"tcpKeepAlive\": \"120\"", JsonSerializer.Serialize(fromFile.Config, TargetConfig.Json));
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void TheTcpLimits_ReachTheTransportOptions_AndNotTheCore()
    {
        var defaults = TargetHost.TransportOptions(CommandLine.Parse([], new Hashtable()).Config.Limits);
        Assert.Equal((8192, 131072, 131072, true), (defaults.InCapsuleDataSize, defaults.MaxH2CData, defaults.MaxC2HData, defaults.C2HSuccess));
        var cl = CommandLine.Parse(["--in-capsule", "4096", "--max-h2c-data", "16384", "--c2h-success", "off"], new Hashtable());
        Assert.Empty(cl.Errors);
        var t = TargetHost.TransportOptions(cl.Config.Limits);
        Assert.Equal((4096, 16384, false), (t.InCapsuleDataSize, t.MaxH2CData, t.C2HSuccess));
        Assert.Equal(4096, t.Describe().InCapsuleDataSize); // what the core reports as IOCCSZ
    }

    [Theory]
    [InlineData(new[] { "--max-connections", "0" }, "limits.maxConnections 0 is outside 1..1000000")]
    [InlineData(new[] { "--max-connections", "many" }, "--max-connections 'many' is not a number")]
    [InlineData(new[] { "--max-controllers-per-host", "0" }, "limits.maxControllersPerHost 0 is outside 1..65519")]
    [InlineData(new[] { "--host-buffer-share", "0" }, "limits.hostBufferShare 0 is outside 1..100")]
    [InlineData(new[] { "--host-buffer-share", "150%" }, "limits.hostBufferShare 150 is outside 1..100")]
    [InlineData(new[] { "--host-buffer-share", "half" }, "--host-buffer-share 'half' is not a percentage (1..100)")]
    [InlineData(new[] { "--r2t-timeout", "0" }, "limits.r2tTimeout 0 is not a number of seconds in (0, 3600]")]
    [InlineData(new[] { "--pdu-timeout", "soon" }, "--pdu-timeout 'soon' is not a number of seconds")]
    [InlineData(new[] { "--connect-timeout", "7200" }, "limits.connectTimeout 7200 is not a number of seconds in (0, 3600]")]
    [InlineData(new[] { "--tcp-keepalive", "never" }, "limits.tcpKeepAlive 'never' is neither a number of seconds in 1..32767 nor off")]
    public async Task BadBounds_ExitWithCode2AndAClearMessage(string[] args, string message)
    {
        var (code, _, err) = await TargetProcess.RunAsync(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public async Task Help_DocumentsEveryBound()
    {
        var (code, output, _) = await TargetProcess.RunAsync("--help");
        Assert.Equal(0, code);
        foreach (var text in new[] { "--max-connections", "--max-controllers-per-host", "--host-buffer-share", "--r2t-timeout", "--pdu-timeout",
                     "--connect-timeout", "--tcp-keepalive", "NVMET_MAX_CONNECTIONS", "NVMET_MAX_CONTROLLERS_PER_HOST", "NVMET_HOST_BUFFER_SHARE",
                     "NVMET_R2T_TIMEOUT", "NVMET_PDU_TIMEOUT", "NVMET_CONNECT_TIMEOUT", "NVMET_TCP_KEEPALIVE" })
            Assert.Contains(text, output);
    }
}
