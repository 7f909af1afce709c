using System.Diagnostics;

/// <summary>Runs tshark (Wireshark's command line) on a capture, for the wire trace tests. tshark is a test prerequisite
/// (test.sh installs it): missing, a test fails and says so, it is never skipped.</summary>
internal static class Tshark
{
    /// <summary>tshark's standard output for <paramref name="file"/>, with TCP port <paramref name="port"/> decoded as NVMe/TCP.</summary>
    public static string Run(string file, int port, params string[] args)
    {
        var psi = new ProcessStartInfo("tshark") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["-n", "-r", file, "-d", $"tcp.port=={port},nvme-tcp", .. args]) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("tshark is not installed (test.sh installs it: apt-get install tshark); this test needs it", e);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"tshark on {file} did not finish within 2 minutes");
            }
            if (p.ExitCode != 0) throw new InvalidOperationException($"tshark failed ({p.ExitCode}): {stderr.Result}");
            return stdout.Result;
        }
    }

    /// <summary>The NVMe/TCP PDU types (nvme-tcp.type) of every PDU the dissector decoded, in order.</summary>
    public static List<int> PduTypes(string file, int port) =>
        [.. Run(file, port, "-Y", "nvme-tcp", "-T", "fields", "-e", "nvme-tcp.type")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).SelectMany(l => l.Split(',')).Select(int.Parse)];

    /// <summary>Packets the dissectors call malformed (a PDU that does not decode), one summary line each.</summary>
    public static string Malformed(string file, int port) => Run(file, port, "-Y", "_ws.malformed").Trim();
}
