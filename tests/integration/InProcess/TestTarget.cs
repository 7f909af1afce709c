using System.Net;
using Integration.Tests.Initiator;
using Microsoft.Extensions.Logging;
using Target;
using Target.Configuration;
using Transport.Tcp;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>An in-process target on 127.0.0.1, port 0, with memory namespaces unless the test says otherwise.
/// Dispose it in every exit path (await using).</summary>
public sealed class TestTarget : IAsyncDisposable
{
    public const string Nqn = "nqn.2026-01.io.nvmetcptarget.test:sub1";
    public const long NamespaceBytes = 64L << 20;
    public const int BlockSize = 512;
    public const ulong NamespaceBlocks = NamespaceBytes / BlockSize;

    private readonly ILoggerFactory _loggers;
    private int _disposed;

    private TestTarget(TargetHost host, TargetConfig config, ILoggerFactory loggers)
    {
        Host = host;
        Config = config;
        _loggers = loggers;
    }

    public TargetHost Host { get; private set; }
    public TargetConfig Config { get; }
    public IPEndPoint Endpoint => Host.Endpoints[0];

    public static TargetConfig DefaultConfig() => new()
    {
        Ports = [new PortConfig { Id = 1, Address = "127.0.0.1", Port = 0 }],
        Subsystems =
        [
            new SubsystemConfig
            {
                Nqn = Nqn,
                AllowAnyHost = true,
                Namespaces = [new NamespaceConfig { Nsid = 1, Backend = "memory", Size = "64M", BlockSize = BlockSize }],
            },
        ],
    };

    public static async Task<TestTarget> StartAsync(ITestOutputHelper? output = null, Action<TargetConfig>? configure = null, TcpTransportOptions? transport = null)
    {
        var config = DefaultConfig();
        configure?.Invoke(config);
        var errors = ConfigValidator.Validate(config);
        if (errors.Count > 0) throw new InvalidOperationException("invalid test configuration: " + string.Join("; ", errors));
        var loggers = LoggerFactory.Create(b =>
        {
            b.SetMinimumLevel(LogLevel.Information);
            b.AddFilter("Microsoft", LogLevel.Warning);
            if (output != null) b.AddProvider(new TestOutputLoggerProvider(output));
        });
        try
        {
            var host = await TargetHost.StartAsync(config, loggers, transport).ConfigureAwait(false);
            return new TestTarget(host, config, loggers);
        }
        catch
        {
            loggers.Dispose();
            throw;
        }
    }

    public Task<NvmeTcpHost> ConnectAsync(NvmeTcpHostOptions? options = null, string nqn = Nqn) =>
        NvmeTcpHost.ConnectAsync(Endpoint, nqn, options);

    /// <summary>Admin queue + <paramref name="ioQueues"/> I/O queues.</summary>
    public async Task<NvmeTcpHost> ConnectWithIoAsync(int ioQueues = 1, NvmeTcpHostOptions? options = null)
    {
        var host = await ConnectAsync(options).ConfigureAwait(false);
        try
        {
            await host.CreateIoQueuesAsync(ioQueues).ConfigureAwait(false);
            return host;
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the target (flushes and closes stores) without disposing the logger factory.</summary>
    public async Task StopAsync() => await Host.DisposeAsync().ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try { await Host.DisposeAsync().ConfigureAwait(false); }
        finally { _loggers.Dispose(); }
    }
}

/// <summary>Sends Information+ log lines of the target to the xunit test output (helps when a test fails).</summary>
internal sealed class TestOutputLoggerProvider(ITestOutputHelper output) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger(output, categoryName);
    public void Dispose() { }

    private sealed class Logger(ITestOutputHelper output, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel,-11} {category}: {formatter(state, exception)}{(exception != null ? " " + exception : "")}"); }
            catch (InvalidOperationException) { /* the test already finished */ }
        }
    }
}

/// <summary>Seeded random data and polling helpers.</summary>
internal static class TestData
{
    public static byte[] Random(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }
}
