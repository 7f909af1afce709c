using System.Text.RegularExpressions;
using Target;
using Target.Configuration;
using Target.Management;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// Fault injection against the real Linux host (6.1 and 6.12), one boot each: an Unrecovered Read Error (DNR) on an LBA range reaches
/// the reader as an I/O error on that range only; a transient transport error (no DNR) is retried by the host and the
/// data reads back whole; a dropped connection makes the host reconnect by itself while fio verifies with zero errors;
/// a stall longer than the host's I/O timeout makes it time out and reset, and the write completes once the stall is
/// cleared; simulated write protection turns the disk read-only on the host and back. A wire trace of the whole session
/// (reconnects included) decodes in tshark with no malformed PDU.
/// </summary>
public sealed partial class HotPlugLinuxTests
{
    [Theory]
    [MemberData(nameof(GuestKernels.Both), MemberType = typeof(GuestKernels))]
    public async Task Faults_ReadError_Transient_Drop_Stall_WriteProtect(GuestKernel kernel)
    {
        using var logs = LinuxTarget.Logs(Log);
        var storage = Directory.CreateTempSubdirectory("nvmet-linux-trace-");
        try
        {
            var config = LinuxTarget.Config();
            config.Storage = new StorageConfig { Directories = [storage.FullName] };
            await using var host = await TargetHost.StartAsync(config, logs);
            await FaultSessionAsync(host, kernel);
        }
        finally { storage.Delete(recursive: true); }
    }

    private async Task FaultSessionAsync(TargetHost host, GuestKernel kernel)
    {
        var m = host.Manager;
        // The whole session is traced (PDU data cut to 64 bytes: fio's traffic would fill the file otherwise).
        var trace = m.StartTrace(new TraceRequest { Subsystem = Nqn, TruncateData = 64, MaxSize = "1G" });
        // Faults set before the guest starts (the guest cannot be told when a fault is set, so each has its own range):
        // LBA 2048..4095 (512-byte blocks: 1..2 MiB) reads fail with Unrecovered Read Error (DNR); the first 3 reads in
        // 4..6 MiB get a transient transport error (no DNR); writes at 64 MiB and beyond stall until cleared.
        var ure = m.AddFault(new FaultConfig
        {
            Subsystem = Nqn, Nsid = 1, Opcodes = ["read"], LbaFirst = 2048, LbaLast = 4095, Action = "error", Status = "unrecovered-read-error", Dnr = true,
        });
        var transient = m.AddFault(new FaultConfig
        {
            Subsystem = Nqn, Nsid = 1, Opcodes = ["read"], LbaFirst = 8192, LbaLast = 12287, Count = 3, Action = "error", Status = "transient-transport-error",
        });
        var stall = m.AddFault(new FaultConfig { Subsystem = Nqn, Nsid = 1, Opcodes = ["write"], LbaFirst = 131072, Action = "stall" });
        var body = """
            echo 5 > /sys/module/nvme_core/parameters/io_timeout
            sec connect nvme connect -t tcp -a $T -s $P -n $N --ctrl-loss-tmo=120 --reconnect-delay=1
            D1=$(wait_dev 1) || fail "no block device for NSID 1"
            dd if=/dev/urandom of=/tmp/a bs=64k count=128 2>/dev/null
            dd if=/tmp/a of=$D1 bs=64k count=128 oflag=direct 2>/dev/null || fail "initial write failed"
            sec ure-in dd if=$D1 of=/dev/null bs=4k skip=384 count=1 iflag=direct
            sec ure-before dd if=$D1 of=/dev/null bs=64k count=16 iflag=direct
            sec ure-after dd if=$D1 of=/dev/null bs=64k skip=32 count=16 iflag=direct
            sec transient sh -c "dd if=$D1 of=/tmp/b bs=64k skip=64 count=32 iflag=direct 2>/dev/null && dd if=/tmp/a of=/tmp/c bs=64k skip=64 count=32 2>/dev/null && cmp /tmp/b /tmp/c && echo identical"
            mark clear-errors
            poll 600 dd if=$D1 of=/dev/null bs=4k skip=384 count=1 iflag=direct 2>/dev/null
            seen clear-errors
            bg_fio $D1
            wait_writes 1 200 || fail "background fio did not start"
            mark drop
            poll 1200 sh -c 'dmesg | grep -q "Successfully reconnected"'
            seen drop
            sec reconnected sh -c 'dmesg | grep -E "reconnect|Reconnect"'
            _w=$(ns_writes 1); wait_writes 1 $((_w + 200)) || fail "fio made no progress after the reconnect"
            bg_stop
            ( dd if=/tmp/a of=$D1 bs=64k seek=1024 count=16 oflag=direct 2>/tmp/stall.err; echo $? > /tmp/stall.rc ) &
            poll 1200 sh -c 'dmesg | grep -q timeout'
            sec stall-timeout sh -c 'dmesg | grep -E "timeout|reset|reconnect" | tail -n 5'
            mark stall-seen
            poll 1200 test -s /tmp/stall.rc
            sec stall-done sh -c 'cat /tmp/stall.rc; cat /tmp/stall.err; dd if=$0 of=/tmp/c bs=64k skip=1024 count=16 iflag=direct 2>/dev/null; dd if=/tmp/a of=/tmp/d bs=64k count=16 2>/dev/null; cmp /tmp/c /tmp/d && echo identical' $D1
            B=${D1##*/}
            mark wp-on
            poll 600 grep -qx 1 /sys/block/$B/ro
            sec wp-on cat /sys/block/$B/ro
            mark wp-off
            poll 600 grep -qx 0 /sys/block/$B/ro
            sec wp-off cat /sys/block/$B/ro
            sec dmesg dmesg
            sec disconnect nvme disconnect -n $N
            """;
        await using var vm = GuestVm.Start(Script(host.Endpoints[0].Port, body), GuestTimeout, kernel: kernel);

        await MarkAsync(vm, "clear-errors");
        var transientLeft = m.ListFaults().FirstOrDefault(f => f.Id == transient.Id);
        long ureFired = m.GetFault(ure.Id).Fired;
        m.RemoveFault(ure.Id);
        if (transientLeft != null) m.RemoveFault(transient.Id);
        await MarkAsync(vm, "drop");
        var dropped = m.InjectConnectionFault(new ConnectionFaultRequest { Subsystem = Nqn, Action = TargetManager.DropAction });
        await MarkAsync(vm, "stall-seen");
        long stalledFired = m.GetFault(stall.Id).Fired;
        m.RemoveFault(stall.Id);
        await MarkAsync(vm, "wp-on");
        m.SetWriteProtected(Nqn, 1, true);
        await MarkAsync(vm, "wp-off");
        m.SetWriteProtected(Nqn, 1, false);

        int rc = await vm.WaitForExitAsync(GuestTimeout);
        var traced = await m.StopTraceAsync(trace.Id);
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        var dmesg = Section(s, "dmesg", vm).Output;

        // Unrecovered Read Error: that range fails, the ranges on both sides read.
        Check(Section(s, "ure-in", vm).Rc != 0, "a read inside the faulted range succeeded", vm);
        Check(Section(s, "ure-before", vm).Rc == 0, "a read before the faulted range failed", vm);
        Check(Section(s, "ure-after", vm).Rc == 0, "a read after the faulted range failed", vm);
        Check(Regex.IsMatch(dmesg, @"critical medium error|Unrecovered Read Error|status: 0x(4)?281", RegexOptions.IgnoreCase),
            "the host kernel log does not name the medium error", vm);
        // Transient: retried by the host, all data back.
        Check(Section(s, "transient", vm).Output.Contains("identical"), "the read under transient errors did not return the data", vm);
        Check(transientLeft is null, $"the transient fault did not fire its 3 times (left: {transientLeft?.Remaining})", vm);
        Check(ureFired >= 1, "the read error fault never fired", vm);
        // Drop: the host reconnected by itself; fio verify saw nothing.
        Check(dropped.Connections.Count >= 2, $"the drop hit {dropped.Connections.Count} connection(s), expected the admin and I/O queues", vm);
        Check(dmesg.Contains("Successfully reconnected"), "the host never reconnected after the drop", vm);
        CheckBackgroundFio(s, vm);
        // Stall past the I/O timeout: the host timed out and reset; after the clear the write went through.
        Check(stalledFired >= 1, "the stall fault never fired", vm);
        Check(Regex.IsMatch(Section(s, "stall-timeout", vm).Output, "timeout"), "the host logged no I/O timeout while the write was stalled", vm);
        var done = Section(s, "stall-done", vm).Output;
        Check(done.TrimStart().StartsWith('0') && done.Contains("identical"), $"the stalled write did not complete with the data after the clear: {done}", vm);
        // Write protection: read-only on the host, then writable.
        Check(Section(s, "wp-on", vm).Output.Trim() == "1", "the disk did not turn read-only on the host", vm);
        Check(Section(s, "wp-off", vm).Output.Trim() == "0", "the disk did not turn writable again on the host", vm);
        // The trace: every connection of the session (the first ones, and those after the reconnect), decoded cleanly.
        Check(traced.StopReason == "stopped", $"the trace stopped early: {traced.StopReason}", vm);
        int port = host.Endpoints[0].Port;
        var malformed = Tshark.Malformed(traced.Path, port);
        Check(malformed == "", "tshark finds malformed packets in the trace: " + string.Join(" | ", malformed.Split('\n').Take(5)), vm);
        var types = Tshark.PduTypes(traced.Path, port);
        int icreqs = types.Count(t => t == 0);
        Check(icreqs >= 2 * (1 + 1) && icreqs == traced.Connections, $"{icreqs} ICReqs for {traced.Connections} traced connections (expected every queue, twice)", vm);
        Check(new[] { 4, 5, 6, 7, 9 }.All(types.Contains), "PDU types missing from the trace: " + string.Join(",", types.Distinct()), vm);
        Log($"trace: {traced.Connections} connections, {traced.Packets} packets, {traced.Bytes} bytes, {traced.DroppedBytes} bytes dropped; {types.Count} PDUs decoded");
        Log($"drop: {dropped.Connections.Count} connection(s); reconnect: " + string.Join(" | ", Section(s, "reconnected", vm).Output.Split('\n').Where(l => l.Length > 0).Take(3)));
        Log("stall: " + Section(s, "stall-timeout", vm).Output.Replace('\n', '|'));
        Log("background fio: " + string.Join(" | ", Section(s, "bg-fio", vm).Output.Split('\n').Where(l => l.Contains("IOPS=")).Select(l => l.Trim())));
    }
}
