using System.Text.RegularExpressions;
using Target.Configuration;
using Transport.Tcp.Trace;

namespace Target.Management;

/// <summary>Body of POST /api/v1/traces: which connections, and the trace's bounds.</summary>
public sealed class TraceRequest
{
    /// <summary>Connections of this subsystem only.</summary>
    public string? Subsystem { get; set; }
    /// <summary>Connections of this host NQN only.</summary>
    public string? Host { get; set; }
    /// <summary>Connections of this controller only (the host's admin and I/O queues, also those it connects later).</summary>
    public ushort? Cntlid { get; set; }
    /// <summary>Only this queue (0 = admin).</summary>
    public ushort? Queue { get; set; }
    /// <summary>The file's largest size ("64M", "1G", bytes); the trace stops there. Default 64M, at most 4G.</summary>
    public string? MaxSize { get; set; }
    /// <summary>Stops by itself after this many seconds (absent: when stopped).</summary>
    public double? DurationSeconds { get; set; }
    /// <summary>Bytes of each PDU's data kept after its header (0: headers only); absent keeps everything. Data digests
    /// go with the data.</summary>
    public int? TruncateData { get; set; }
    /// <summary>File name in the trace directory (letters, digits, '.', '_', '-'; ".pcapng" is added when missing);
    /// default trace-TIME-N.pcapng.</summary>
    public string? File { get; set; }
}

/// <summary>A wire trace as the API shows it.</summary>
public sealed record TraceInfo(
    int Id, string State, string? StopReason, string Path, string Selection, string? Subsystem, string? Host, ushort? Cntlid, ushort? Queue,
    long MaxBytes, int? TruncateData, double? DurationSeconds, DateTimeOffset StartedAt, DateTimeOffset? StoppedAt,
    long Connections, long Packets, long Bytes, long DroppedBytes);

/// <summary>
/// Wire traces (pcapng): started and stopped live, written into the "traces" directory of the first storage directory
/// (created 0700; files 0600, never overwritten), so that what a trace may write is what the storage policy allows.
/// </summary>
public sealed partial class TargetManager
{
    public const string TraceDirectoryName = "traces";
    public const long MaxTraceBytes = 4L << 30;
    private static readonly Regex TraceFileName = new("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", RegexOptions.CultureInvariant);
    private int _traceFiles;

    /// <summary>The transport's traces (TargetHost sets it once the server exists); null: no tracing.</summary>
    public WireTracer? Traces { get; set; }

    /// <summary>Where trace files go.</summary>
    public string TraceDirectory => Path.Join(Storage.Directories[0], TraceDirectoryName);

    private WireTracer Tracer => Traces ?? throw new ManagementException(ManagementError.Conflict, "wire traces are not available (the target has no NVMe/TCP server yet)");

    public IReadOnlyList<TraceInfo> ListTraces() => [.. Tracer.List().Select(DescribeTrace)];

    public TraceInfo GetTrace(int id) => DescribeTrace(FindTrace(id));

    private WireTrace FindTrace(int id) =>
        Tracer.Find(id) ?? throw new ManagementException(ManagementError.NotFound, $"trace {id} does not exist (or was deleted)");

    public TraceInfo StartTrace(TraceRequest r)
    {
        var tracer = Tracer;
        if (r.Subsystem != null) Find(r.Subsystem);
        long maxBytes = WireTraceOptions.DefaultMaxBytes;
        if (r.MaxSize != null && (!Sizes.TryParse(r.MaxSize, out maxBytes) || maxBytes < 64 * 1024 || maxBytes > MaxTraceBytes))
            throw new ManagementException(ManagementError.Invalid, $"maxSize '{r.MaxSize}' must be a size from 64K to 4G (e.g. 64M)");
        if (r.DurationSeconds is double d && (!double.IsFinite(d) || d <= 0 || d > 7 * 24 * 3600))
            throw new ManagementException(ManagementError.Invalid, $"durationSeconds {d} must be above 0 and at most a week (604800)");
        if (r.TruncateData is < 0)
            throw new ManagementException(ManagementError.Invalid, $"truncateData {r.TruncateData} must be 0 (headers only) or more bytes");
        string name = r.File ?? $"trace-{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-{Interlocked.Increment(ref _traceFiles)}.pcapng";
        if (!TraceFileName.IsMatch(name))
            throw new ManagementException(ManagementError.Invalid, $"trace file name '{name}' must be a plain name of letters, digits, '.', '_' and '-' (no directories)");
        if (!name.EndsWith(".pcapng", StringComparison.Ordinal)) name += ".pcapng";

        var options = new WireTraceOptions
        {
            Selection = new WireTraceSelection(r.Subsystem, r.Host, r.Cntlid, r.Queue),
            MaxBytes = maxBytes,
            Duration = r.DurationSeconds is double s ? TimeSpan.FromSeconds(s) : null,
            TruncateData = r.TruncateData,
        };
        var (path, file) = CreateTraceFile(name);
        try
        {
            return DescribeTrace(tracer.Start(options, path, file));
        }
        catch (InvalidOperationException e)
        {
            file.Dispose();
            File.Delete(path);
            throw new ManagementException(ManagementError.Conflict, e.Message);
        }
    }

    /// <summary>Creates the trace file where the storage policy allows it: never over an existing file (O_EXCL, which
    /// also refuses a symbolic link there), mode 0600.</summary>
    private (string Path, FileStream File) CreateTraceFile(string name)
    {
        const UnixFileMode dirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        try
        {
            if (Storage.IsDefault && !Directory.Exists(Storage.Directories[0])) Directory.CreateDirectory(Storage.Directories[0], dirMode);
            if (Directory.Exists(Storage.Directories[0]) && !Directory.Exists(TraceDirectory)) Directory.CreateDirectory(TraceDirectory, dirMode);
            var (real, exists) = Storage.CheckFile(Path.Join(TraceDirectoryName, name), mayCreate: true);
            if (exists) throw new ManagementException(ManagementError.Conflict, $"trace file {real} exists; choose another name or delete that trace");
            var file = new FileStream(real, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.Read, BufferSize = 64 * 1024,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            return (real, file);
        }
        catch (Target.Storage.StoragePolicyException e) { throw new ManagementException(ManagementError.Forbidden, "trace file: " + e.Message); }
        catch (Nvme.Core.Storage.StoreException e) { throw new ManagementException(ManagementError.Invalid, "trace file: " + e.Message); }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new ManagementException(ManagementError.Conflict, $"cannot create trace file {name} in {TraceDirectory}: {e.Message}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ManagementException(ManagementError.Forbidden, $"cannot create trace file {name} in {TraceDirectory}: {e.Message}");
        }
    }

    /// <summary>Stops a trace (the file stays); waits briefly until the file is complete.</summary>
    public async Task<TraceInfo> StopTraceAsync(int id)
    {
        var t = FindTrace(id);
        t.Stop("stopped");
        await Task.WhenAny(t.Completion, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        return DescribeTrace(t);
    }

    /// <summary>A finished trace's file, for download; 409 while it runs.</summary>
    public string TraceFile(int id)
    {
        var t = FindTrace(id);
        if (!t.Completion.IsCompleted)
            throw new ManagementException(ManagementError.Conflict, $"trace {id} is still running; stop it first (POST {ManagementApi.Prefix}/traces/{id}/stop)");
        if (!File.Exists(t.Path)) throw new ManagementException(ManagementError.NotFound, $"trace {id}'s file {t.Path} is gone");
        return t.Path;
    }

    /// <summary>Stops a trace if it runs, deletes its file and forgets it.</summary>
    public async Task DeleteTraceAsync(int id)
    {
        var t = FindTrace(id);
        t.Stop("stopped");
        await Task.WhenAny(t.Completion, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        try { File.Delete(t.Path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ManagementException(ManagementError.Conflict, $"cannot delete trace file {t.Path}: {e.Message}");
        }
        Tracer.Forget(id);
    }

    private static TraceInfo DescribeTrace(WireTrace t)
    {
        var o = t.Options;
        var sel = o.Selection;
        return new TraceInfo(t.Id, t.Running ? "running" : "stopped", t.StopReason, t.Path, sel.ToString(), sel.Subsystem, sel.Host, sel.Cntlid, sel.Queue,
            o.MaxBytes, o.TruncateData, o.Duration?.TotalSeconds, t.StartedAt, t.StoppedAt, t.Connections, t.Packets, t.BytesWritten, t.DroppedBytes);
    }
}
