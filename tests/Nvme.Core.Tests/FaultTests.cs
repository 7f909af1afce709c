using Nvme.Core.Faults;
using Nvme.Core.Spec;

namespace Nvme.Core.Tests;

/// <summary>Injected I/O faults: matching (namespace, host, queue, opcode, LBA range), probability and count, expiry,
/// errors before and after executing, delays and stalls that never block the queue, and the no-fault path.</summary>
public class FaultTests
{
    private static (TestTarget T, TestQueue Io) Setup()
    {
        var t = new TestTarget();
        var admin = t.ConnectAdmin();
        return (t, t.ConnectIo(admin.Controller!.Cntlid));
    }

    private static FaultSpec Ure(ulong first = 0, ulong last = ulong.MaxValue) => new()
    {
        SubsystemNqn = TestTarget.SubNqn, Nsid = 1, Opcodes = [IoOpcode.Read], FirstLba = first, LastLba = last,
        Action = FaultAction.Error, Status = NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr,
    };

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        // A liveness bound, not a timing assertion: the condition normally holds within milliseconds.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for: {what}");
            Thread.Sleep(5);
        }
    }

    [Fact]
    public void No_fault_set_means_no_active_list()
    {
        var (t, io) = Setup();
        using var _t = t;
        Assert.Null(t.Target.Faults.Active);
        io.Ok(Cmd.Read(1, 0, 8));
        var rule = t.Target.Faults.Add(Ure());
        Assert.NotNull(t.Target.Faults.Active);
        Assert.True(t.Target.Faults.Remove(rule.Id));
        Assert.Null(t.Target.Faults.Active);
        Assert.False(t.Target.Faults.Remove(rule.Id));
    }

    [Fact]
    public void Error_hits_only_reads_that_overlap_the_range()
    {
        var (t, io) = Setup();
        using var _t = t;
        var data = Pattern(8 * 512, 1);
        io.Ok(Cmd.Write(1, 96, 8), data);
        var rule = t.Target.Faults.Add(Ure(100, 199));

        io.Expect(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr, Cmd.Read(1, 96, 8)); // 96..103 overlaps 100
        io.Expect(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr, Cmd.Read(1, 199, 1));
        io.Ok(Cmd.Read(1, 92, 8)); // 92..99 ends just before
        io.Ok(Cmd.Read(1, 200, 8));
        io.Ok(Cmd.Write(1, 100, 8), data); // writes are not matched
        io.Ok(Cmd.Flush(1)); // a fault with a range never matches a command without one
        Assert.Equal(2, rule.Fired);
        Assert.Equal(2, rule.Matched);
        Assert.Equal(0, t.Ns.InFlight);
        Assert.Equal(2, t.Target.Faults.FiredErrors);
    }

    [Fact]
    public void Error_before_executing_writes_nothing_error_after_executing_writes()
    {
        var (t, io) = Setup();
        using var _t = t;
        var spec = new FaultSpec
        {
            SubsystemNqn = TestTarget.SubNqn, Opcodes = [IoOpcode.Write], Count = 1,
            Action = FaultAction.Error, Status = NvmeStatus.WriteFault,
        };
        t.Target.Faults.Add(spec);
        var a = Pattern(512, 2);
        io.Expect(NvmeStatus.WriteFault, Cmd.Write(1, 10, 1), a);
        var raw = new byte[512];
        t.Store.Read(10 * 512, raw);
        Assert.All(raw, b => Assert.Equal(0, b)); // not written

        var after = t.Target.Faults.Add(spec with { AfterExecute = true });
        var req = io.Submit(Cmd.Write(1, 10, 1), a);
        WaitFor(() => io.Transport.Responses.Contains(req), "the written-but-failed write completes");
        Assert.Equal(NvmeStatus.WriteFault, req.Status);
        t.Store.Read(10 * 512, raw);
        Assert.Equal(a, raw); // written, reported failed
        Assert.Equal(1, after.Fired);
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public void Count_fires_exactly_that_often_then_the_fault_is_gone()
    {
        var (t, io) = Setup();
        using var _t = t;
        var rule = t.Target.Faults.Add(Ure() with { Count = 3 });
        var statuses = Enumerable.Range(0, 6).Select(i => io.Submit(Cmd.Read(1, (ulong)i, 1)).Status).ToList();
        Assert.Equal(3, statuses.Count(s => s != NvmeStatus.Success));
        Assert.Equal(statuses.Take(3), Enumerable.Repeat(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr, 3));
        Assert.Equal(3, rule.Fired);
        Assert.Equal(0, rule.Remaining);
        Assert.True(rule.HasEnded);
        Assert.Empty(t.Target.Faults.Rules);
        Assert.Null(t.Target.Faults.Active);
    }

    [Fact]
    public void Probability_hits_about_that_share_and_counts_match()
    {
        var (t, io) = Setup();
        using var _t = t;
        var rule = t.Target.Faults.Add(Ure() with { Probability = 0.3 });
        int errors = 0;
        for (int i = 0; i < 2000; i++)
            if (io.Submit(Cmd.Read(1, (ulong)(i % 1000), 1)).Status != NvmeStatus.Success) errors++;
        Assert.Equal(2000, rule.Matched);
        Assert.Equal(errors, rule.Fired);
        // Binomial(2000, 0.3): mean 600, standard deviation 20.5; 400..800 is ten deviations either side.
        Assert.InRange(errors, 400, 800);
    }

    [Fact]
    public void Host_queue_and_namespace_filters()
    {
        using var t = new TestTarget();
        var a = t.ConnectAdmin();
        var io1 = t.ConnectIo(a.Controller!.Cntlid, qid: 1);
        var io2 = t.ConnectIo(a.Controller!.Cntlid, qid: 2);
        var other = t.ConnectAdmin(hostNqn: TestTarget.OtherHostNqn);
        var otherIo = t.ConnectIo(other.Controller!.Cntlid, hostNqn: TestTarget.OtherHostNqn);

        t.Target.Faults.Add(Ure() with { HostNqn = TestTarget.HostNqn, QueueId = 2 });
        io1.Ok(Cmd.Read(1, 0, 1));
        io2.Expect(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr, Cmd.Read(1, 0, 1));
        otherIo.Ok(Cmd.Read(1, 0, 1));
        t.Target.Faults.Clear();

        t.Target.Faults.Add(Ure() with { Nsid = 2 });
        io1.Ok(Cmd.Read(1, 0, 1));
        t.Target.Faults.Add(Ure() with { SubsystemNqn = "nqn.2024-01.io.example:elsewhere" });
        io1.Ok(Cmd.Read(1, 0, 1));
        Assert.Equal(2, t.Target.Faults.Clear());
        Assert.Equal(0, t.Target.Faults.Clear());
    }

    [Fact]
    public void Delay_completes_later_without_holding_up_the_queue()
    {
        var (t, io) = Setup();
        using var _t = t;
        t.Target.Faults.Add(new FaultSpec
        {
            SubsystemNqn = TestTarget.SubNqn, Opcodes = [IoOpcode.Write], Action = FaultAction.Delay, Delay = TimeSpan.FromMilliseconds(300),
        });
        var data = Pattern(512, 3);
        var slow = io.Submit(Cmd.Write(1, 5, 1), data);
        Assert.DoesNotContain(slow, io.Transport.Responses); // not answered synchronously
        io.Ok(Cmd.Read(1, 0, 1)); // the queue goes on
        WaitFor(() => io.Transport.Responses.Contains(slow), "the delayed write completes");
        Assert.Equal(NvmeStatus.Success, slow.Status);
        var raw = new byte[512];
        t.Store.Read(5 * 512, raw);
        Assert.Equal(data, raw);
        Assert.Equal(1, t.Target.Faults.FiredDelays);
    }

    [Fact]
    public void Jitter_is_within_its_bound()
    {
        var rule = new FaultRule(1, new FaultSpec
        {
            SubsystemNqn = "x", Action = FaultAction.Delay, Delay = TimeSpan.FromMilliseconds(10), Jitter = TimeSpan.FromMilliseconds(5),
        });
        var delays = Enumerable.Range(0, 500).Select(_ => rule.NextDelay()).ToList();
        Assert.All(delays, d => Assert.InRange(d, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(15)));
        Assert.True(delays.Distinct().Count() > 10, "jitter varies");
    }

    [Fact]
    public void Stall_holds_commands_until_the_fault_is_cleared()
    {
        var (t, io) = Setup();
        using var _t = t;
        var rule = t.Target.Faults.Add(new FaultSpec { SubsystemNqn = TestTarget.SubNqn, Opcodes = [IoOpcode.Write], Action = FaultAction.Stall });
        var data = Pattern(512, 4);
        var held = io.Submit(Cmd.Write(1, 7, 1), data);
        WaitFor(() => rule.Stalled == 1, "the write is stalled");
        io.Ok(Cmd.Read(1, 0, 1)); // others go on
        Thread.Sleep(100);
        Assert.DoesNotContain(held, io.Transport.Responses);
        Assert.Equal(1, t.Ns.InFlight);
        Assert.True(t.Target.Faults.Remove(rule.Id));
        WaitFor(() => io.Transport.Responses.Contains(held), "the released write completes");
        Assert.Equal(NvmeStatus.Success, held.Status);
        var raw = new byte[512];
        t.Store.Read(7 * 512, raw);
        Assert.Equal(data, raw);
        Assert.Equal(0, rule.Stalled);
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public void Stall_with_a_time_limit_lets_the_command_go_on()
    {
        var (t, io) = Setup();
        using var _t = t;
        var rule = t.Target.Faults.Add(new FaultSpec
        {
            SubsystemNqn = TestTarget.SubNqn, Action = FaultAction.Stall, StallFor = TimeSpan.FromMilliseconds(200),
        });
        var held = io.Submit(Cmd.Read(1, 0, 1));
        WaitFor(() => io.Transport.Responses.Contains(held), "the stall ends by itself");
        Assert.Equal(NvmeStatus.Success, held.Status);
        Assert.False(rule.HasEnded); // the fault stays; each command waits its own time
    }

    [Fact]
    public void A_stalled_write_on_a_closed_queue_is_never_executed()
    {
        var (t, io) = Setup();
        using var _t = t;
        t.Target.Faults.Add(new FaultSpec { SubsystemNqn = TestTarget.SubNqn, Action = FaultAction.Stall });
        var held = io.Submit(Cmd.Write(1, 9, 1), Pattern(512, 5));
        io.Queue.Close(); // the host gave up: reset, reconnect
        WaitFor(() => io.Transport.Responses.Contains(held), "the stalled command is released");
        Assert.Equal(NvmeStatus.AbortSqDeleted, held.Status);
        var raw = new byte[512];
        t.Store.Read(9 * 512, raw);
        Assert.All(raw, b => Assert.Equal(0, b));
        Assert.Equal(0, t.Ns.InFlight);
        t.Target.Faults.Clear();
    }

    [Fact]
    public void Duration_expires_the_fault()
    {
        var (t, io) = Setup();
        using var _t = t;
        var rule = t.Target.Faults.Add(Ure() with { Duration = TimeSpan.FromMilliseconds(200) });
        Assert.NotNull(rule.ExpiresAt);
        WaitFor(() => t.Target.Faults.Rules.Count == 0, "the fault expires");
        Assert.True(rule.HasEnded);
        io.Ok(Cmd.Read(1, 0, 1));
    }

    [Theory]
    [InlineData("probability")]
    [InlineData("count")]
    [InlineData("range")]
    [InlineData("queue0")]
    [InlineData("opcode")]
    [InlineData("success")]
    [InlineData("status-bits")]
    [InlineData("delay")]
    [InlineData("stall")]
    [InlineData("duration")]
    public void Invalid_faults_are_refused(string what)
    {
        var ok = Ure();
        var bad = what switch
        {
            "probability" => ok with { Probability = 0 },
            "count" => ok with { Count = 0 },
            "range" => ok with { FirstLba = 10, LastLba = 9 },
            "queue0" => ok with { QueueId = 0 },
            "opcode" => ok with { Opcodes = [0x7F] },
            "success" => ok with { Status = NvmeStatus.Success },
            "status-bits" => ok with { Status = (NvmeStatus)0x8281 },
            "delay" => ok with { Action = FaultAction.Delay },
            "stall" => ok with { Action = FaultAction.Stall, StallFor = TimeSpan.Zero },
            _ => ok with { Duration = TimeSpan.FromDays(2) },
        };
        Assert.Null(ok.Validate());
        Assert.NotNull(bad.Validate());
        using var t = new TestTarget();
        Assert.Throws<ArgumentException>(() => t.Target.Faults.Add(bad));
        Assert.Empty(t.Target.Faults.Rules);
    }

    [Fact]
    public void Write_protection_refuses_changes_reports_nsattr_and_tells_the_hosts()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin();
        var io = t.ConnectIo(admin.Controller!.Cntlid);
        byte Nsattr() => admin.Ok(Cmd.Identify(IdentifyCns.Namespace, 1)).DataSpan[99];
        Assert.Equal(0, Nsattr());

        Assert.Equal(1, t.Subsystem.SetWriteProtected(t.Ns, true));
        Assert.Equal(1, Nsattr());
        Assert.Equal(1, admin.Ok(Cmd.Identify(IdentifyCns.CommandSetIndependentNamespace, 1)).DataSpan[8]);
        io.Expect(NvmeStatus.NamespaceIsWriteProtected, Cmd.Write(1, 0, 1), new byte[512]);
        io.Expect(NvmeStatus.NamespaceIsWriteProtected, Cmd.WriteZeroes(1, 0, 1));
        io.Ok(Cmd.Read(1, 0, 1));
        io.Ok(Cmd.Flush(1));
        Assert.Equal(0, t.Ns.InFlight);

        t.Subsystem.SetWriteProtected(t.Ns, false);
        Assert.Equal(0, Nsattr());
        io.Ok(Cmd.Write(1, 0, 1), new byte[512]);
    }
}
