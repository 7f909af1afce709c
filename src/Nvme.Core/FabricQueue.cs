using System.Diagnostics;
using System.Runtime.CompilerServices;
using Nvme.Core.Auth;
using Nvme.Core.Commands;
using Nvme.Core.Faults;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Nvme.Core.Telemetry;

namespace Nvme.Core;

/// <summary>
/// The core side of one transport queue (one connection of whatever transport). Parse first, execute later:
/// <see cref="Prepare"/> validates a command and says how much data it moves and in which direction; the
/// transport moves the data (in the capsule, or fetched its own way: R2T/H2CData over TCP) and calls
/// <see cref="Execute"/>; the completion goes back through <see cref="IQueueTransport.QueueResponse"/>. Commands on
/// one queue may run concurrently. The core tells the transport what it must act on through the same interface
/// (<see cref="IQueueTransport.QueueInstalled"/>, <see cref="NvmeRequest.CloseAfterResponse"/>).
/// </summary>
public sealed class FabricQueue
{
    private int _sqhd;
    private int _closed;
    private CancellationTokenSource? _closedCts;

    internal FabricQueue(NvmeTarget target, IQueueTransport transport)
    {
        Target = target;
        Transport = transport;
    }

    public NvmeTarget Target { get; }
    public IQueueTransport Transport { get; }
    public ushort QueueId { get; internal set; }
    /// <summary>The target port this queue's connection came in on (<see cref="Port.PortId"/>), set by the transport
    /// before the first command; 0 = not known, which reaches only subsystems open to every port.</summary>
    public ushort PortId { get; set; }
    public Controller? Controller { get; internal set; }
    public bool IsConnected => Controller != null;
    /// <summary>Entries in this queue (Connect SQSIZE + 1).</summary>
    public int QueueSize { get; internal set; }
    /// <summary>The host disabled SQ flow control in Connect (CATTR bit 2).</summary>
    public bool SqFlowControlDisabled { get; internal set; }
    internal TargetLimits Limits => Target.Limits;
    /// <summary>DH-HMAC-CHAP state of a queue whose controller requires authentication (null otherwise).</summary>
    internal QueueAuthentication? Auth { get; set; }
    /// <summary>The queue must authenticate and has not (yet): it gets nothing but Authentication Send/Receive.</summary>
    public bool AwaitsAuthentication => Auth is { Authenticated: false };
    /// <summary>The admin queue of a live controller that still has I/O queues: closing it destroys the controller
    /// under them, so a graceful close (shutdown) waits until this is false.</summary>
    public bool HoldsIoQueues => QueueId == 0 && Controller is { IsDestroyed: false } c && c.IoQueueCount > 0;

    /// <summary>
    /// Validates a received command: queue state, opcode, namespace, ranges and transfer length. Sets
    /// <see cref="NvmeRequest.Direction"/> and <see cref="NvmeRequest.DataLength"/>. On a non-success status
    /// the transport completes the request with <see cref="Complete"/> without moving data.
    /// </summary>
    public NvmeStatus Prepare(NvmeRequest req)
    {
        req.Queue = this;
        req.StartTimestamp = Stopwatch.GetTimestamp();
        req.Cqe = default;
        req.Cqe.CommandId = req.Sqe.CommandId;
        req.Cqe.SqId = QueueId;
        // Traces: every admin/fabrics command while a tracer listens; I/O only when sampled (default never).
        req.Activity = QueueId == 0 || Controller is null
            ? NvmeTelemetry.Source.HasListeners() ? NvmeTelemetry.StartCommand(this, req, io: false) : null
            : Target.TraceIoSampleRate > 0 && NvmeTelemetry.Source.HasListeners() && Random.Shared.NextDouble() < Target.TraceIoSampleRate
                ? NvmeTelemetry.StartCommand(this, req, io: true) : null;
        if (QueueSize > 0)
        {
            _sqhd = _sqhd + 1 == QueueSize ? 0 : _sqhd + 1; // Prepare runs on the queue's receive loop only
            req.Cqe.SqHead = (ushort)_sqhd;
        }

        byte opcode = req.Sqe.Opcode;
        byte xfer = opcode == AdminOpcode.Fabrics ? req.Sqe.FabricsType : opcode;
        uint length = req.Sqe.Sgl.Length;
        req.Direction = length == 0 ? DataDirection.None : (xfer & 3) switch
        {
            1 => DataDirection.HostToController,
            2 => DataDirection.ControllerToHost,
            _ => DataDirection.None,
        };
        // Bidirectional (xfer 3) opcodes: none is supported; the handlers answer Invalid Opcode.
        if (length > (uint)Limits.MaxTransferBytes) return NvmeStatus.InvalidField; // MDTS
        req.DataLength = req.Direction == DataDirection.None ? 0 : (int)length;

        if (opcode == AdminOpcode.Fabrics) return FabricsCommands.Prepare(this, req);
        var ctrl = Controller;
        if (ctrl is null) return NvmeStatus.CommandSequenceError; // nothing but Connect before Connect
        if (AwaitsAuthentication) return NvmeStatus.AuthenticationRequired; // nvmet_check_auth_status
        ctrl.Touch();
        return QueueId == 0 ? AdminCommands.Prepare(this, ctrl, req) : IoCommands.Prepare(this, ctrl, req);
    }

    /// <summary>A successful Connect was SQ entry 0 of the new queue: its completion reports SQHD 1, as the
    /// Linux target and SPDK do.</summary>
    internal ushort ConsumeConnectEntry() => (ushort)(_sqhd = 1);

    /// <summary>Runs a prepared command whose host-to-controller data (if any) has arrived. Completion comes
    /// back through the transport, synchronously for memory namespaces and admin commands.</summary>
    public void Execute(NvmeRequest req)
    {
        if (req.Sqe.Opcode == AdminOpcode.Fabrics)
        {
            Complete(req, FabricsCommands.Execute(this, req));
            return;
        }
        if (QueueId == 0)
        {
            var status = AdminCommands.Execute(this, Controller!, req, out bool parked);
            if (!parked) Complete(req, status);
            return;
        }
        // Injected faults: one volatile read, null unless a test lab set one.
        if (Target.Faults.Active is { } faults && Target.Faults.Match(this, req, faults) is { } fault)
        {
            _ = ExecuteFaultedAsync(req, fault);
            return;
        }
        var pending = IoCommands.ExecuteAsync(this, req);
        if (pending.IsCompletedSuccessfully) Complete(req, pending.Result);
        else _ = CompleteLater(pending, req);
    }

    /// <summary>Runs an I/O command a fault hit: answers the fault's error instead of executing or after executing, or
    /// executes after a delay or a stall. Never blocks the queue (the receive loop goes on at once). A command whose
    /// connection closes while it waits is never executed (a late write after the host has given up and retried
    /// elsewhere would be a write nobody asked for).</summary>
    private async Task ExecuteFaultedAsync(NvmeRequest req, FaultRule fault)
    {
        var spec = fault.Spec;
        try
        {
            switch (spec.Action)
            {
                case FaultAction.Error when !spec.AfterExecute:
                    Complete(req, spec.Status);
                    return;
                case FaultAction.Delay:
                    await Task.Delay(fault.NextDelay(), ClosedToken).ConfigureAwait(false);
                    break;
                case FaultAction.Stall:
                    await fault.StallAsync(ClosedToken).ConfigureAwait(false);
                    break;
            }
        }
        catch (OperationCanceledException)
        {
            Complete(req, NvmeStatus.AbortSqDeleted); // the connection is gone: nothing is sent, the references go back
            return;
        }
        var status = await Settle(IoCommands.ExecuteAsync(this, req), req).ConfigureAwait(false);
        Complete(req, spec.Action == FaultAction.Error ? spec.Status : status);
    }

    /// <summary>Cancelled when this queue closes (created on first use: only faulted commands wait on it).</summary>
    private CancellationToken ClosedToken
    {
        get
        {
            var cts = Volatile.Read(ref _closedCts);
            if (cts is null)
            {
                var fresh = new CancellationTokenSource();
                cts = Interlocked.CompareExchange(ref _closedCts, fresh, null) ?? fresh;
                if (cts != fresh) fresh.Dispose();
                if (Volatile.Read(ref _closed) != 0) cts.Cancel();
            }
            return cts.Token;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CompleteLater(ValueTask<NvmeStatus> pending, NvmeRequest req) =>
        Complete(req, await Settle(pending, req).ConfigureAwait(false));

    /// <summary>The status of a store operation, its exceptions turned into what the host should hear (and logged).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<NvmeStatus> Settle(ValueTask<NvmeStatus> pending, NvmeRequest req)
    {
        NvmeStatus status;
        try { status = await pending.ConfigureAwait(false); }
        catch (StoreIoException e)
        {
            // The store says what the host should hear: a read past the end of a shrunk file is a media error,
            // a full file system Capacity Exceeded (both with DNR: retrying cannot help).
            status = e.Status;
            Target.Log.StoreError(req.Sqe.Nsid, req.Namespace?.Store.Description ?? "?", CoreMetrics.StatusLabel(status), e.Message);
        }
        catch (Exception e)
        {
            status = NvmeStatus.InternalError;
            Target.Log.StoreError(req.Sqe.Nsid, req.Namespace?.Store.Description ?? "?", CoreMetrics.StatusLabel(status), e.Message);
        }
        return status;
    }

    /// <summary>Finishes a request: releases its namespace reference, fills the completion and hands it to
    /// the transport.</summary>
    public void Complete(NvmeRequest req, NvmeStatus status)
    {
        var ns = req.Namespace;
        if (!req.MarkCompleted())
        {
            // An abort answered the host already; the store is done with the buffer only now.
            req.Namespace = null;
            if (ns != null) Record(req, ns, NvmeStatus.AbortRequested);
            if (req.Activity != null) EndActivity(req, NvmeStatus.AbortRequested);
            ns?.Release(req.NamespaceEpoch);
            req.CompletedAfterAbort = true;
            Transport.QueueResponse(req);
            return;
        }
        if (ns != null)
        {
            req.Namespace = null;
            if (status != NvmeStatus.Success) Interlocked.Increment(ref ns.Counters.Errors);
            Record(req, ns, status);
            ns.Release(req.NamespaceEpoch);
        }
        else if (status != NvmeStatus.Success) RecordError(req, status);
        if (req.Activity != null) EndActivity(req, status);
        req.Cqe.Status = status;
        var ctrl = Controller;
        if (ctrl != null)
        {
            ctrl.Touch(); // traffic-based keep-alive: completing a command counts too (a slow command is not silence)
            if (status != NvmeStatus.Success) ctrl.RecordError(req, QueueId);
        }
        Transport.QueueResponse(req);
    }

    /// <summary>Per-namespace count, latency and status (plain interlocked adds, no allocation).</summary>
    private void Record(NvmeRequest req, Namespace ns, NvmeStatus status)
    {
        long ticks = Stopwatch.GetTimestamp() - req.StartTimestamp;
        var op = IoOps.Of(req.Sqe.Opcode);
        ns.Counters.RecordCompletion(op, status, ticks);
        var metrics = Target.Metrics;
        if (metrics.CommandDuration.Enabled) metrics.RecordDuration(Controller?.Subsystem.Nqn ?? "", ns, op, ticks);
    }

    /// <summary>A failed command that held no namespace: one rejected before it took it (LBA out of range, ...)
    /// counts for that namespace; anything else (admin, fabrics, unknown NSID) for the subsystem.</summary>
    private void RecordError(NvmeRequest req, NvmeStatus status)
    {
        var sub = Controller?.Subsystem;
        if (QueueId != 0 && sub?.GetNamespace(req.Sqe.Nsid, Controller!.HostNqn) is { } ns) Record(req, ns, status);
        else Target.Metrics.RecordCommandError(sub?.Nqn ?? "", status);
    }

    private void EndActivity(NvmeRequest req, NvmeStatus status)
    {
        var a = req.Activity!;
        req.Activity = null;
        NvmeTelemetry.EndCommand(a, this, status);
    }

    /// <summary>Completes a parked Async Event Request (dword0 already set) unless the queue is gone.</summary>
    internal void CompleteParked(NvmeRequest req)
    {
        if (Volatile.Read(ref _closed) != 0) return;
        Interlocked.Increment(ref Target.Metrics.AsyncEventsSent);
        Complete(req, NvmeStatus.Success);
    }

    /// <summary>Completes an admin command that finishes later (Namespace Attachment waits for a drain) unless the queue
    /// is gone by then.</summary>
    internal async Task CompleteWhenDone(NvmeRequest req, Task<NvmeStatus> pending)
    {
        NvmeStatus status;
        try { status = await pending.ConfigureAwait(false); }
        catch (Exception e)
        {
            status = NvmeStatus.InternalError;
            if (Controller is { } c) Target.Log.NamespaceAttachmentFailed(c.Cntlid, c.HostNqn, c.Subsystem.Nqn, e.Message);
        }
        if (Volatile.Read(ref _closed) != 0) return;
        Complete(req, status);
    }

    /// <summary>The transport connection ended: unbind from the controller (the admin queue takes the
    /// controller down with it).</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        Volatile.Read(ref _closedCts)?.Cancel();
        Target.OnQueueClosed();
        Controller?.UnbindQueue(QueueId, this);
    }
}
