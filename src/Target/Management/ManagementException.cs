namespace Target.Management;

public enum ManagementError
{
    Invalid,
    NotFound,
    Conflict,
    /// <summary>Not allowed by a rule of the target (the storage policy): 403.</summary>
    Forbidden,
}

/// <summary>A management request that cannot be carried out; the message is meant for the operator
/// (the HTTP API turns it into an RFC 7807 problem: 400, 403, 404 or 409).</summary>
public sealed class ManagementException(ManagementError kind, string message) : Exception(message)
{
    public ManagementError Kind { get; } = kind;
}
