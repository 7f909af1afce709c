using System.Diagnostics;
using System.Text;

namespace Integration.Tests;

/// <summary>The output of a started process (stdout and stderr, redirected), collected line by line, with a wait
/// for the first line containing some text (e.g. the target's "nvme connect" hint once it listens).</summary>
internal sealed class ProcessLog
{
    private readonly StringBuilder _text = new();
    private readonly List<(string Needle, TaskCompletionSource<string> Seen)> _waits = [];

    public ProcessLog(Process p)
    {
        p.OutputDataReceived += (_, e) => Add(e.Data);
        p.ErrorDataReceived += (_, e) => Add(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
    }

    public string Text { get { lock (_text) return _text.ToString(); } }

    /// <summary>The first line (seen already or still to come) that contains <paramref name="needle"/>.</summary>
    public Task<string> WaitForAsync(string needle, TimeSpan timeout)
    {
        lock (_text)
        {
            var seen = _text.ToString().Split('\n').FirstOrDefault(l => l.Contains(needle, StringComparison.Ordinal));
            if (seen != null) return Task.FromResult(seen);
            var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waits.Add((needle, tcs));
            return tcs.Task.WaitAsync(timeout);
        }
    }

    private void Add(string? line)
    {
        if (line is null) return;
        lock (_text)
        {
            _text.AppendLine(line);
            foreach (var w in _waits.Where(w => line.Contains(w.Needle, StringComparison.Ordinal)).ToList())
            {
                w.Seen.TrySetResult(line);
                _waits.Remove(w);
            }
        }
    }
}
