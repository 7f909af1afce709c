namespace Nvme.Core.Spec;

/// <summary>
/// The 15-bit status field of a completion (NVMe base spec 4.2.3): SC bits 7:0, SCT bits 10:8, CRD 12:11,
/// More bit 13, DNR bit 14. Handlers return one of these; they never throw for NVMe-level errors.
/// </summary>
public enum NvmeStatus : ushort
{
    Success = 0x000,

    // Generic command status (SCT 0)
    InvalidOpcode = 0x001 | Dnr,
    InvalidField = 0x002 | Dnr,
    CommandIdConflict = 0x003 | Dnr,
    DataTransferError = 0x004,
    InternalError = 0x006,
    AbortRequested = 0x007,
    AbortSqDeleted = 0x008,
    InvalidNamespaceOrFormat = 0x00B | Dnr,
    CommandSequenceError = 0x00C | Dnr,
    InvalidSglSegmentDescriptor = 0x00D | Dnr,
    DataSglLengthInvalid = 0x00F | Dnr,
    SglDescriptorTypeInvalid = 0x011 | Dnr,
    SglOffsetInvalid = 0x016 | Dnr,
    NamespaceIsWriteProtected = 0x020 | Dnr,
    TransientTransportError = 0x022,
    LbaOutOfRange = 0x080 | Dnr,
    CapacityExceeded = 0x081 | Dnr,
    NamespaceNotReady = 0x082,

    // Command specific status (SCT 1)
    InvalidQueueIdentifier = 0x101 | Dnr,
    InvalidQueueSize = 0x102 | Dnr,
    AsyncEventRequestLimitExceeded = 0x105 | Dnr,
    InvalidLogPage = 0x109 | Dnr,
    FeatureIdNotSaveable = 0x10D | Dnr,
    FeatureNotChangeable = 0x10E | Dnr,
    ConnectIncompatibleFormat = 0x180 | Dnr,
    ConnectControllerBusy = 0x181,
    ConnectInvalidParameters = 0x182 | Dnr,
    ConnectInvalidHost = 0x184 | Dnr,
    /// <summary>Namespace Attachment: the namespace is already attached to a controller in the list.</summary>
    NamespaceAlreadyAttached = 0x118 | Dnr,
    /// <summary>Namespace Attachment: the namespace is not attached to a controller in the list.</summary>
    NamespaceNotAttached = 0x11A | Dnr,
    /// <summary>Namespace Attachment: the controller list is malformed or names a controller that does not exist.</summary>
    ControllerListInvalid = 0x11C | Dnr,
    /// <summary>The queue must authenticate first (Fabrics command specific 91h; nvmet answers it with DNR).</summary>
    AuthenticationRequired = 0x191 | Dnr,

    // Media errors (SCT 2)
    UnrecoveredReadError = 0x281,
    WriteFault = 0x280,
    /// <summary>Access Denied (SCT 2h, SC 86h): the host lacks the right (here: the namespace attachment privilege).</summary>
    AccessDenied = 0x286 | Dnr,

    // Path related status (SCT 3): retryable on another path, so never DNR (the Linux host fails over or queues the I/O).
    /// <summary>ANA Persistent Loss (SCT 3h, SC 01h): the namespace's ANA group is in the persistent loss state on this port.</summary>
    AnaPersistentLoss = 0x301,
    /// <summary>ANA Inaccessible (SCT 3h, SC 02h).</summary>
    AnaInaccessible = 0x302,
    /// <summary>ANA Transition (SCT 3h, SC 03h): the group is changing state.</summary>
    AnaTransition = 0x303,

    /// <summary>Do Not Retry.</summary>
    Dnr = 0x4000,
}

public static class NvmeStatusExtensions
{
    public static byte CodeType(this NvmeStatus s) => (byte)(((ushort)s >> 8) & 0x7);
    public static byte Code(this NvmeStatus s) => (byte)s;
    public static bool IsSuccess(this NvmeStatus s) => s == NvmeStatus.Success;
}
