using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Nvme.Core.Spec;

namespace Nvme.Core.Faults;

/// <summary>
/// The faults set on a target (a test lab's tool: make chosen I/O fail, slow down or hang, live, per namespace, host
/// and queue). The I/O path pays one volatile read of <see cref="Active"/> per command, which is null while no fault
/// is set (bench/ measures it). Rules are replaced copy-on-write, so matching takes no lock.
/// </summary>
public sealed class FaultInjector
{
    private readonly Lock _lock = new();
    private readonly NvmeTarget _target;
    private ImmutableList<FaultRule> _rules = ImmutableList<FaultRule>.Empty;
    private FaultRule[]? _active;
    private int _nextId;
    private long _firedErrors, _firedDelays, _firedStalls;

    internal FaultInjector(NvmeTarget target) => _target = target;

    /// <summary>The faults set now, or null when there are none (the I/O path's whole cost then).</summary>
    internal FaultRule[]? Active => Volatile.Read(ref _active);

    public IReadOnlyList<FaultRule> Rules => Volatile.Read(ref _rules);

    public FaultRule? Find(int id) => Rules.FirstOrDefault(r => r.Id == id);

    /// <summary>Firings so far of every fault, removed ones included, by action.</summary>
    public long FiredErrors => Interlocked.Read(ref _firedErrors);
    public long FiredDelays => Interlocked.Read(ref _firedDelays);
    public long FiredStalls => Interlocked.Read(ref _firedStalls);

    /// <summary>Sets a fault (it applies to the next matching command). Throws <see cref="ArgumentException"/> when the
    /// spec is invalid.</summary>
    public FaultRule Add(FaultSpec spec)
    {
        if (spec.Validate() is string problem) throw new ArgumentException(problem, nameof(spec));
        FaultRule rule;
        lock (_lock)
        {
            rule = new FaultRule(++_nextId, spec);
            Publish(_rules.Add(rule));
        }
        _target.Log.FaultSet(rule.Id, Describe(spec));
        if (spec.Duration is { } d)
            _ = Task.Delay(d).ContinueWith(_ => Remove(rule, "expired"), TaskScheduler.Default);
        return rule;
    }

    /// <summary>Clears a fault; commands it stalls go on. False when there is no such fault.</summary>
    public bool Remove(int id) => Find(id) is { } r && Remove(r, "cleared");

    /// <summary>Clears every fault (of one subsystem when <paramref name="subsystemNqn"/> is given). Returns how many.</summary>
    public int Clear(string? subsystemNqn = null)
    {
        int n = 0;
        foreach (var r in Rules)
            if ((subsystemNqn is null || r.Spec.SubsystemNqn == subsystemNqn) && Remove(r, "cleared")) n++;
        return n;
    }

    private bool Remove(FaultRule rule, string why)
    {
        lock (_lock)
        {
            if (!_rules.Contains(rule)) return false;
            Publish(_rules.Remove(rule));
        }
        rule.End();
        _target.Log.FaultRemoved(rule.Id, why, rule.Fired, rule.Matched);
        return true;
    }

    private void Publish(ImmutableList<FaultRule> rules)
    {
        Volatile.Write(ref _rules, rules);
        Volatile.Write(ref _active, rules.IsEmpty ? null : [.. rules]);
    }

    /// <summary>The first fault that hits this prepared I/O command, or null. Counts the match and the firing, and
    /// removes a fault whose count is used up.</summary>
    internal FaultRule? Match(FabricQueue q, NvmeRequest req, FaultRule[] rules)
    {
        var ctrl = q.Controller;
        if (ctrl is null) return null;
        ref readonly var sqe = ref req.Sqe;
        byte op = sqe.Opcode;
        foreach (var r in rules)
        {
            var s = r.Spec;
            if (r.HasEnded) continue;
            if (s.Nsid != 0 && s.Nsid != sqe.Nsid) continue;
            if (s.QueueId is { } qid && qid != q.QueueId) continue;
            if (s.Opcodes != null && !Contains(s.Opcodes, op)) continue;
            if (!string.Equals(s.SubsystemNqn, ctrl.Subsystem.Nqn, StringComparison.Ordinal)) continue;
            if (s.HostNqn != null && !string.Equals(s.HostNqn, ctrl.HostNqn, StringComparison.Ordinal)) continue;
            if (s.HasLbaRange)
            {
                if (op is not (IoOpcode.Read or IoOpcode.Write or IoOpcode.WriteZeroes)) continue;
                ulong first = sqe.StartingLba, last = first + sqe.BlockCount; // BlockCount is NLB + 1: last is one past
                if (last <= s.FirstLba || first > s.LastLba) continue;
            }
            r.CountMatch();
            if (s.Probability < 1 && Random.Shared.NextDouble() >= s.Probability) continue;
            if (!r.TryTakeFiring(out bool wasLast)) continue;
            if (wasLast) Remove(r, "count reached");
            if (s.Action == FaultAction.Error) Interlocked.Increment(ref _firedErrors);
            else if (s.Action == FaultAction.Delay) Interlocked.Increment(ref _firedDelays);
            else Interlocked.Increment(ref _firedStalls);
            LogFiring(r, q, req);
            return r;
        }
        return null;
    }

    private static bool Contains(IReadOnlyList<byte> list, byte op)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == op) return true;
        return false;
    }

    /// <summary>Every firing is counted; the log gets the first one and then at most one line a second per fault (a 1 %
    /// fault under 100k IOPS must not flood it).</summary>
    private void LogFiring(FaultRule r, FabricQueue q, NvmeRequest req)
    {
        long now = Environment.TickCount64;
        long last = Volatile.Read(ref r.LastLogMs);
        if (last != long.MinValue && now - last < 1000) return;
        if (Interlocked.CompareExchange(ref r.LastLogMs, now, last) != last) return;
        long fired = r.Fired;
        long since = fired - Interlocked.Exchange(ref r.FiredAtLastLog, fired);
        _target.Log.FaultFired(r.Id, r.Spec.Action.ToString().ToLowerInvariant(), FaultOpcodes.Name(req.Sqe.Opcode), req.Sqe.Nsid,
            req.Sqe.StartingLba, q.Controller!.HostNqn, q.QueueId, req.Sqe.CommandId, fired, since);
    }

    /// <summary>One line for logs: what the fault matches and does.</summary>
    public static string Describe(FaultSpec s)
    {
        var parts = new List<string> { $"subsystem {s.SubsystemNqn}", s.Nsid == 0 ? "every namespace" : $"namespace {s.Nsid}" };
        if (s.HostNqn != null) parts.Add($"host {s.HostNqn}");
        if (s.QueueId is { } q) parts.Add($"queue {q}");
        if (s.Opcodes != null) parts.Add(string.Join("/", s.Opcodes.Select(FaultOpcodes.Name)));
        if (s.HasLbaRange) parts.Add($"LBA {s.FirstLba}-{s.LastLba}");
        if (s.Probability < 1) parts.Add($"probability {s.Probability:0.######}");
        if (s.Count is { } c) parts.Add($"{c} time(s)");
        if (s.Duration is { } d) parts.Add($"for {d.TotalSeconds:0.###} s");
        parts.Add(s.Action switch
        {
            FaultAction.Error => $"error {Telemetry.CoreMetrics.StatusLabel(s.Status)} (sct {s.Status.CodeType()} sc 0x{s.Status.Code():x2}{((s.Status & NvmeStatus.Dnr) != 0 ? " dnr" : "")}){(s.AfterExecute ? " after executing" : "")}",
            FaultAction.Delay => $"delay {s.Delay.TotalMilliseconds:0.###} ms" + (s.Jitter > TimeSpan.Zero ? $" + up to {s.Jitter.TotalMilliseconds:0.###} ms" : ""),
            _ => s.StallFor is { } st ? $"stall up to {st.TotalMilliseconds:0.###} ms" : "stall until cleared",
        });
        return string.Join(", ", parts);
    }
}
