using DotNet.Testcontainers.Configurations;
using Microsoft.Extensions.Logging;

namespace Integration.Tests.Deploy;

/// <summary>
/// Testcontainers set up for this machine, before any of its types is first used: Testcontainers picks its Docker
/// endpoint in a static initializer that pings the engine, so the engine must answer first, and it reads its
/// environment variables once.
/// </summary>
internal static class TestDocker
{
    /// <summary>The address every published port is bound to, and the host the tests connect to.</summary>
    public const string Loopback = "127.0.0.1";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static bool _configured;

    /// <summary>A Docker engine (the running one, or a dockerd started for the test and stopped on dispose) with
    /// Testcontainers configured for it. Throws with the reason when Docker cannot run: the caller fails, never skips.</summary>
    public static async Task<DockerEngine> StartAsync(Action<string> say)
    {
        // Debian's docker.io 20.10 speaks Docker API 1.41; Testcontainers asks for 1.44 unless told otherwise
        // ("client version 1.44 is too new"). An explicit setting (a newer engine) is left alone.
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOCKER_API_VERSION")))
            Environment.SetEnvironmentVariable("DOCKER_API_VERSION", "1.41");
        // The resource reaper (Ryuk) is an image from a registry, and no registry is reachable here: the tests
        // remove what they create themselves, on every exit path.
        Environment.SetEnvironmentVariable("TESTCONTAINERS_RYUK_DISABLED", "true");

        var engine = await DockerEngine.EnsureAsync(say);
        await Gate.WaitAsync();
        try
        {
            if (!_configured)
            {
                TestcontainersSettings.ResourceReaperEnabled = false;
                // This machine has /.dockerenv, so Testcontainers would take the docker0 bridge address as the
                // Docker host (what a test inside a container uses to reach its siblings). Test traffic stays on
                // loopback: every published port is bound to 127.0.0.1 (see BindPublishedPortsToLoopback).
                TestcontainersSettings.DockerHostOverride = Loopback;
                _configured = true;
            }
        }
        finally { Gate.Release(); }
        say($"Testcontainers: Docker API {Environment.GetEnvironmentVariable("DOCKER_API_VERSION")}, resource reaper off, host {TestcontainersSettings.DockerHostOverride}");
        return engine;
    }

    /// <summary>For WithCreateParameterModifier: every published port on 127.0.0.1 only (Docker's default, and
    /// Testcontainers', is every host address).</summary>
    public static void BindPublishedPortsToLoopback(Docker.DotNet.Models.CreateContainerParameters p)
    {
        foreach (var bindings in p.HostConfig?.PortBindings?.Values ?? [])
            foreach (var b in bindings)
                b.HostIP = Loopback;
    }

    /// <summary>Testcontainers' log lines (information and above) in the test output.</summary>
    public static ILogger Logger(Action<string> say) => new SayLogger(say);

    private sealed class SayLogger(Action<string> say) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var message = formatter(state, exception);
            if (message.Contains("added to the regex cache", StringComparison.Ordinal)) return; // .dockerignore bookkeeping
            say($"testcontainers: {message}{(exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})")}");
        }
    }
}
