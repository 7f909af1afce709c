using System.Globalization;
using System.Text.Json.Serialization;
using Nvme.Core.Faults;
using Nvme.Core.Spec;

namespace Target.Configuration;

/// <summary>
/// An injected I/O fault, as the configuration file's "faults" list and the body of POST /api/v1/faults give it. Faults
/// are a test lab's tool: those in the file are set at start; those set through the API live until cleared or expired
/// and are never written to the file.
/// </summary>
public sealed class FaultConfig
{
    /// <summary>Subsystem NQN (required).</summary>
    [JsonRequired]
    public string Subsystem { get; set; } = "";
    /// <summary>Namespace (absent: every namespace of the subsystem).</summary>
    public uint? Nsid { get; set; }
    /// <summary>Only this host NQN's commands (absent: any host).</summary>
    public string? Host { get; set; }
    /// <summary>Only this I/O queue id (absent: any queue).</summary>
    public ushort? Queue { get; set; }
    /// <summary>read, write, flush, write-zeroes, dsm (absent: every I/O command).</summary>
    public List<string>? Opcodes { get; set; }
    /// <summary>First LBA of the matched range (absent: 0).</summary>
    public ulong? LbaFirst { get; set; }
    /// <summary>Last LBA of the matched range, inclusive (absent: the end).</summary>
    public ulong? LbaLast { get; set; }
    /// <summary>Chance a matching command is hit, 0 &lt; p ≤ 1 (absent: 1, every one).</summary>
    public double? Probability { get; set; }
    /// <summary>Fire this many times, then go away (absent: no limit).</summary>
    public long? Count { get; set; }
    /// <summary>Go away after this many seconds (absent: until cleared).</summary>
    public double? DurationSeconds { get; set; }
    /// <summary>error, delay or stall (required).</summary>
    [JsonRequired]
    public string Action { get; set; } = "";
    /// <summary>error: a status name (unrecovered-read-error, write-fault, namespace-not-ready, transient-transport-error,
    /// ...; see <see cref="StatusNames"/>) or SCT:SC in hex ("2:81").</summary>
    public string? Status { get; set; }
    /// <summary>error: set Do Not Retry (the host fails the I/O instead of retrying it). Default false.</summary>
    public bool? Dnr { get; set; }
    /// <summary>error: execute the command first, then report the error ("written but reported failed").</summary>
    public bool? AfterExecute { get; set; }
    /// <summary>delay: the added latency in milliseconds.</summary>
    public double? DelayMs { get; set; }
    /// <summary>delay: a uniformly distributed extra 0..jitterMs.</summary>
    public double? JitterMs { get; set; }
    /// <summary>stall: hold each command at most this long (absent: until the fault is cleared or expires).</summary>
    public double? StallMs { get; set; }

    /// <summary>Status names accepted for "status" (SCT:SC in hex works for any other).</summary>
    public static readonly IReadOnlyDictionary<string, NvmeStatus> StatusNames = new Dictionary<string, NvmeStatus>(StringComparer.OrdinalIgnoreCase)
    {
        ["unrecovered-read-error"] = (NvmeStatus)0x281,
        ["write-fault"] = (NvmeStatus)0x280,
        ["namespace-not-ready"] = (NvmeStatus)0x082,
        ["transient-transport-error"] = (NvmeStatus)0x022,
        ["internal-error"] = (NvmeStatus)0x006,
        ["data-transfer-error"] = (NvmeStatus)0x004,
        ["abort-requested"] = (NvmeStatus)0x007,
        ["namespace-write-protected"] = (NvmeStatus)0x020,
        ["lba-out-of-range"] = (NvmeStatus)0x080,
        ["capacity-exceeded"] = (NvmeStatus)0x081,
        ["end-to-end-guard-check-error"] = (NvmeStatus)0x282,
        ["compare-failure"] = (NvmeStatus)0x285,
        ["access-denied"] = (NvmeStatus)0x286,
        ["ana-persistent-loss"] = NvmeStatus.AnaPersistentLoss,
        ["ana-inaccessible"] = NvmeStatus.AnaInaccessible,
        ["ana-transition"] = NvmeStatus.AnaTransition,
    };

    /// <summary>A status name or "SCT:SC" (hex), without DNR; null with <paramref name="error"/> when it is neither.</summary>
    public static NvmeStatus? ParseStatus(string text, out string? error)
    {
        error = null;
        if (StatusNames.TryGetValue(text.Trim(), out var named)) return named;
        var parts = text.Split(':');
        if (parts.Length == 2 && TryHex(parts[0], out uint sct) && TryHex(parts[1], out uint sc) && sct <= 7 && sc <= 0xFF && (sct | sc) != 0)
            return (NvmeStatus)((sct << 8) | sc);
        error = $"status '{text}' is not a status name ({string.Join(", ", StatusNames.Keys)}) or SCT:SC in hex (e.g. 2:81)";
        return null;
    }

    private static bool TryHex(string s, out uint value)
    {
        s = s.Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        return uint.TryParse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>The core's fault; null with <paramref name="error"/> saying what is wrong.</summary>
    public FaultSpec? ToSpec(out string? error)
    {
        error = null;
        if (!Enum.TryParse<FaultAction>(Action, ignoreCase: true, out var action) || !Enum.IsDefined(action) || int.TryParse(Action, out _))
        {
            error = $"action '{Action}' is not error, delay or stall";
            return null;
        }
        List<byte>? opcodes = null;
        if (Opcodes != null)
        {
            opcodes = [];
            foreach (var name in Opcodes)
            {
                if (!FaultOpcodes.TryParse(name, out var op)) { error = $"opcode '{name}' is not one of {string.Join(", ", FaultOpcodes.Names)}"; return null; }
                opcodes.Add(op);
            }
        }
        var status = NvmeStatus.Success;
        if (action == FaultAction.Error)
        {
            if (Status is null) { error = "an error fault needs a status (e.g. unrecovered-read-error, or SCT:SC such as 2:81)"; return null; }
            if (ParseStatus(Status, out error) is not { } s) return null;
            status = Dnr == true ? s | NvmeStatus.Dnr : s;
        }
        else if (Status != null || Dnr != null || AfterExecute != null)
        {
            error = "status, dnr and afterExecute belong to an error fault";
            return null;
        }
        if (action != FaultAction.Delay && (DelayMs != null || JitterMs != null)) { error = "delayMs and jitterMs belong to a delay fault"; return null; }
        if (action != FaultAction.Stall && StallMs != null) { error = "stallMs belongs to a stall fault"; return null; }
        if (action == FaultAction.Delay && DelayMs is null && JitterMs is null) { error = "a delay fault needs delayMs (and optionally jitterMs)"; return null; }
        if (Nsid == 0) { error = "nsid 0 is not a namespace (leave nsid out to match every namespace)"; return null; }
        foreach (var (name, v) in new[] { ("durationSeconds", DurationSeconds), ("delayMs", DelayMs), ("jitterMs", JitterMs), ("stallMs", StallMs) })
            if (v is { } x && (double.IsNaN(x) || double.IsInfinity(x) || x < 0 || x > FaultSpec.MaxWait.TotalMilliseconds))
            {
                error = $"{name} {x} is out of range";
                return null;
            }
        var spec = new FaultSpec
        {
            SubsystemNqn = Subsystem,
            Nsid = Nsid ?? 0,
            HostNqn = string.IsNullOrEmpty(Host) ? null : Host,
            QueueId = Queue,
            Opcodes = opcodes,
            FirstLba = LbaFirst ?? 0,
            LastLba = LbaLast ?? ulong.MaxValue,
            Probability = Probability ?? 1,
            Count = Count,
            Duration = DurationSeconds is { } d ? TimeSpan.FromSeconds(d) : null,
            Action = action,
            Status = status,
            AfterExecute = AfterExecute == true,
            Delay = TimeSpan.FromMilliseconds(DelayMs ?? 0),
            Jitter = TimeSpan.FromMilliseconds(JitterMs ?? 0),
            StallFor = StallMs is { } st ? TimeSpan.FromMilliseconds(st) : null,
        };
        error = spec.Validate();
        return error is null ? spec : null;
    }
}
