using Microsoft.Extensions.Logging;
using Target;
using Target.Configuration;

namespace Integration.Tests.LinuxHost;

/// <summary>Starts the target in-process on loopback for a guest to reach at 10.0.2.2:PORT.</summary>
internal static class LinuxTarget
{
    public const string Nqn = "nqn.2026-01.io.nvmetcptarget:linux-suite";
    public const string RestrictedNqn = "nqn.2026-01.io.nvmetcptarget:restricted";

    public static TargetConfig Config(int port = 0, Action<SubsystemConfig>? configure = null)
    {
        var main = new SubsystemConfig
        {
            Nqn = Nqn,
            Serial = "LNXSUITE0001",
            AllowAnyHost = true,
            Namespaces = { new NamespaceConfig { Nsid = 1, Backend = "memory", Size = "128M" } },
        };
        configure?.Invoke(main);
        return new TargetConfig
        {
            Ports = { new PortConfig { Id = 1, Address = "127.0.0.1", Port = port, AdvertisedAddress = "10.0.2.2" } },
            Subsystems =
            {
                main,
                new SubsystemConfig
                {
                    Nqn = RestrictedNqn,
                    AllowedHosts = { "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001" },
                    Namespaces = { new NamespaceConfig { Nsid = 1, Backend = "memory", Size = "16M" } },
                },
            },
        };
    }

    public static ILoggerFactory Logs(Action<string> sink) => LoggerFactory.Create(b => b
        .SetMinimumLevel(LogLevel.Information)
        .AddFilter("Microsoft", LogLevel.Warning)
        .AddProvider(new SinkLoggerProvider(sink)));

    private sealed class SinkLoggerProvider(Action<string> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new SinkLogger(sink, categoryName);
        public void Dispose() { }
    }

    private sealed class SinkLogger(Action<string> sink, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try { sink($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}"); }
            catch (InvalidOperationException) { /* test output closed */ }
        }
    }
}
