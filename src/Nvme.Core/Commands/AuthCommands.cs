using Nvme.Core.Auth;
using Nvme.Core.Spec;

namespace Nvme.Core.Commands;

/// <summary>
/// Fabrics Authentication Send (FCTYPE 05h, host-to-controller data of TL bytes) and Authentication Receive
/// (06h, controller-to-host data of AL bytes): NVMe over Fabrics 1.1 sections 3.4/3.5 and NVMe base spec 2.0,
/// 8.13.5. CDW10 holds SPSP0 (byte 41), SPSP1 (42) and SECP (43), which must be 01h, 01h and E9h (DH-HMAC-CHAP);
/// CDW11 holds TL or AL. The messages themselves are <see cref="QueueAuthentication"/>'s.
/// </summary>
internal static class AuthCommands
{
    public static NvmeStatus Prepare(FabricQueue q, NvmeRequest req)
    {
        ref readonly var sqe = ref req.Sqe;
        q.Controller!.Touch();
        if (q.Auth is null) return NvmeStatus.InvalidField; // no secrets for this host: nothing to authenticate
        byte spsp0 = (byte)(sqe.Cdw10 >> 8), spsp1 = (byte)(sqe.Cdw10 >> 16), secp = (byte)(sqe.Cdw10 >> 24);
        if (secp != DhchapMessages.ProtocolIdentifier || spsp0 != DhchapMessages.Spsp || spsp1 != DhchapMessages.Spsp)
            return NvmeStatus.InvalidField;
        uint length = sqe.Cdw11; // TL or AL
        if (length == 0 || length > DhchapMessages.MaxLength) return NvmeStatus.InvalidField;
        // The SGL must describe exactly TL/AL bytes (nvmet_check_transfer_len).
        if (sqe.Sgl.Length != length) return NvmeStatus.DataSglLengthInvalid;
        var want = sqe.FabricsType == FabricsType.AuthenticationSend ? DataDirection.HostToController : DataDirection.ControllerToHost;
        if (req.Direction != want) return NvmeStatus.DataSglLengthInvalid;
        return NvmeStatus.Success;
    }

    public static NvmeStatus Execute(FabricQueue q, NvmeRequest req) =>
        req.Sqe.FabricsType == FabricsType.AuthenticationSend
            ? q.Auth!.Send(req.DataSpan, req)
            : q.Auth!.Receive(req.DataSpan, req);
}
