using System.Diagnostics;

namespace Integration.Tests;

/// <summary>
/// The built target executable (nvme-tcp-target.dll beside the tests), started with an environment free of
/// NVMET_* and OTEL_* settings, so only what a test passes counts.
/// </summary>
internal static class TargetProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "nvme-tcp-target.dll");

    public static ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("NVMET_", StringComparison.Ordinal) || k.StartsWith("OTEL_", StringComparison.Ordinal)).ToList())
            psi.Environment.Remove(key);
        if (environment != null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        return psi;
    }

    public static Process Start(params string[] args) => Process.Start(StartInfo(null, args))!;

    /// <summary>Runs to completion (killed after 60 s) and returns the exit code and both outputs.</summary>
    public static async Task<(int Code, string Out, string Err)> RunAsync(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        using var p = Process.Start(StartInfo(environment, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await p.WaitForExitAsync(cts.Token); }
        finally { if (!p.HasExited) p.Kill(true); }
        return (p.ExitCode, await stdout, await stderr);
    }

    public static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => RunAsync(null, args);
}
