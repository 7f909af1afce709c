using System.Diagnostics;
using Nvme.Core.Spec;

namespace Nvme.Core.Telemetry;

/// <summary>
/// Traces: one ActivitySource ("NvmeTcpTarget") for connections (started by the transport), admin and fabrics
/// commands (an Activity each, when something listens), and sampled I/O commands (<see cref="NvmeTarget.TraceIoSampleRate"/>,
/// default 0: none). Nothing is created when no listener is attached.
/// </summary>
public static class NvmeTelemetry
{
    public const string ActivitySourceName = "NvmeTcpTarget";
    public static readonly ActivitySource Source = new(ActivitySourceName);

    /// <summary>Starts a command's Activity as a child of the current one (the connection's) without making it
    /// current: the command completes later, maybe on another thread.</summary>
    internal static Activity? StartCommand(FabricQueue q, NvmeRequest req, bool io)
    {
        var parent = Activity.Current;
        var a = Source.StartActivity(CommandName(req.Sqe, io), ActivityKind.Server);
        if (a is null) return null;
        Activity.Current = parent;
        if (a.IsAllDataRequested)
        {
            a.SetTag("nvme.qid", q.QueueId);
            a.SetTag("nvme.cid", req.Sqe.CommandId);
            a.SetTag("nvme.opcode", req.Sqe.Opcode);
            if (req.Sqe.Nsid != 0) a.SetTag("nvme.nsid", req.Sqe.Nsid);
        }
        return a;
    }

    internal static void EndCommand(Activity a, FabricQueue q, NvmeStatus status)
    {
        var current = Activity.Current;
        if (a.IsAllDataRequested)
        {
            if (q.Controller is { } c)
            {
                a.SetTag("nvme.cntlid", c.Cntlid);
                a.SetTag("nvme.subsystem", c.Subsystem.Nqn);
            }
            a.SetTag("nvme.status", status == NvmeStatus.Success ? "Success" : $"0x{(ushort)status & 0x7FF:x3} {status & ~NvmeStatus.Dnr}");
            if (status != NvmeStatus.Success) a.SetStatus(ActivityStatusCode.Error);
        }
        a.Stop();
        if (Activity.Current != current) Activity.Current = current;
    }

    private static string CommandName(in SubmissionQueueEntry sqe, bool io) => sqe.Opcode switch
    {
        AdminOpcode.Fabrics => sqe.FabricsType switch
        {
            FabricsType.Connect => "NVMe Connect",
            FabricsType.PropertyGet => "NVMe Property Get",
            FabricsType.PropertySet => "NVMe Property Set",
            FabricsType.Disconnect => "NVMe Disconnect",
            _ => "NVMe Fabrics command",
        },
        _ when io => IoCommandName(sqe.Opcode),
        AdminOpcode.GetLogPage => "NVMe Get Log Page",
        AdminOpcode.Identify => "NVMe Identify",
        AdminOpcode.Abort => "NVMe Abort",
        AdminOpcode.SetFeatures => "NVMe Set Features",
        AdminOpcode.GetFeatures => "NVMe Get Features",
        AdminOpcode.AsyncEventRequest => "NVMe Async Event Request",
        AdminOpcode.KeepAlive => "NVMe Keep Alive",
        _ => "NVMe admin command",
    };

    /// <summary>Names for sampled I/O commands (on I/O queues the opcodes mean something else).</summary>
    internal static string IoCommandName(byte opcode) => opcode switch
    {
        IoOpcode.Read => "NVMe Read",
        IoOpcode.Write => "NVMe Write",
        IoOpcode.Flush => "NVMe Flush",
        IoOpcode.WriteZeroes => "NVMe Write Zeroes",
        IoOpcode.DatasetManagement => "NVMe Dataset Management",
        _ => "NVMe I/O command",
    };
}
