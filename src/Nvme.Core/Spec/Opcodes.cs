namespace Nvme.Core.Spec;

/// <summary>Admin command opcodes (NVMe base spec 5, Figure "Opcodes for Admin Commands").</summary>
public static class AdminOpcode
{
    public const byte GetLogPage = 0x02;
    public const byte Identify = 0x06;
    public const byte Abort = 0x08;
    public const byte SetFeatures = 0x09;
    public const byte GetFeatures = 0x0A;
    public const byte AsyncEventRequest = 0x0C;
    public const byte NamespaceAttachment = 0x15;
    public const byte KeepAlive = 0x18;
    public const byte Fabrics = 0x7F;
}

/// <summary>NVM command set I/O opcodes (NVM command set spec 3).</summary>
public static class IoOpcode
{
    public const byte Flush = 0x00;
    public const byte Write = 0x01;
    public const byte Read = 0x02;
    public const byte WriteZeroes = 0x08;
    public const byte DatasetManagement = 0x09;
}

/// <summary>Fabrics command types (NVMe over Fabrics spec 6).</summary>
public static class FabricsType
{
    public const byte PropertySet = 0x00;
    public const byte Connect = 0x01;
    public const byte PropertyGet = 0x04;
    public const byte AuthenticationSend = 0x05;
    public const byte AuthenticationReceive = 0x06;
    public const byte Disconnect = 0x08;
}

/// <summary>Identify CNS values (NVMe base spec 5.17).</summary>
public static class IdentifyCns
{
    public const byte Namespace = 0x00;
    public const byte Controller = 0x01;
    public const byte ActiveNamespaceList = 0x02;
    public const byte NamespaceDescriptorList = 0x03;
    public const byte IoCommandSetNamespace = 0x05;
    public const byte IoCommandSetController = 0x06;
    public const byte IoCommandSetActiveNamespaceList = 0x07;
    public const byte CommandSetIndependentNamespace = 0x08;
    /// <summary>Controller list: the controllers attached to the namespace in NSID, CNTLID at least CDW10.CNTID.</summary>
    public const byte AttachedControllerList = 0x12;
    /// <summary>Controller list: every controller in the NVM subsystem, CNTLID at least CDW10.CNTID.</summary>
    public const byte ControllerList = 0x13;
}

/// <summary>Log page identifiers.</summary>
public static class LogPageId
{
    public const byte Error = 0x01;
    public const byte SmartHealth = 0x02;
    public const byte FirmwareSlot = 0x03;
    public const byte ChangedNamespaceList = 0x04;
    public const byte CommandsSupportedAndEffects = 0x05;
    /// <summary>Asymmetric Namespace Access (NVMe base spec 5.16.1.13).</summary>
    public const byte AsymmetricNamespaceAccess = 0x0C;
    public const byte Discovery = 0x70;
}

/// <summary>Feature identifiers.</summary>
public static class FeatureId
{
    public const byte Arbitration = 0x01;
    public const byte PowerManagement = 0x02;
    public const byte TemperatureThreshold = 0x04;
    public const byte ErrorRecovery = 0x05;
    public const byte VolatileWriteCache = 0x06;
    public const byte NumberOfQueues = 0x07;
    public const byte AsyncEventConfiguration = 0x0B;
    public const byte KeepAliveTimer = 0x0F;
    public const byte HostIdentifier = 0x81;
}

/// <summary>Controller property offsets (NVMe over Fabrics spec 3.5, "Controller Properties").</summary>
public static class PropertyOffset
{
    public const uint Cap = 0x00;
    public const uint Vs = 0x08;
    public const uint Intms = 0x0C;
    public const uint Intmc = 0x10;
    public const uint Cc = 0x14;
    public const uint Csts = 0x1C;
    public const uint Nssr = 0x20;
}

/// <summary>Async event types and info codes (NVMe base spec 5.2).</summary>
public static class AsyncEvent
{
    public const byte TypeNotice = 0x02;
    public const byte InfoNamespaceAttributeChanged = 0x00;
    /// <summary>The completion dword0 for "namespace attribute changed, read log 0x04".</summary>
    public const uint NamespaceAttributeChangedDword0 =
        TypeNotice | (InfoNamespaceAttributeChanged << 8) | ((uint)LogPageId.ChangedNamespaceList << 16);
    /// <summary>Async Event Configuration bit 8: Namespace Attribute Notices.</summary>
    public const uint ConfigNamespaceAttributeNotices = 1u << 8;
    /// <summary>Notice information 03h: Asymmetric Namespace Access Change (read log 0Ch).</summary>
    public const byte InfoAnaChange = 0x03;
    /// <summary>The completion dword0 for "ANA change, read log 0x0C".</summary>
    public const uint AnaChangeDword0 = TypeNotice | (InfoAnaChange << 8) | ((uint)LogPageId.AsymmetricNamespaceAccess << 16);
    /// <summary>Async Event Configuration bit 11 (and OAES bit 11): Asymmetric Namespace Access Change Notices.</summary>
    public const uint ConfigAnaChangeNotices = 1u << 11;
}

public static class WellKnown
{
    public const string DiscoveryNqn = "nqn.2014-08.org.nvmexpress.discovery";
}
