namespace Target.Management;

/// <summary>Invalid: 400; NotFound: 404; Conflict: 409; Forbidden: 403 (a policy refuses it); NotSaved: 500 (the
/// configuration file could not be written, so nothing was changed).</summary>
public enum ManagementError { Invalid, NotFound, Conflict, Forbidden, NotSaved }

/// <summary>A management request that cannot be carried out; the message is meant for the operator
/// (the HTTP API turns it into an RFC 7807 problem: 400, 403, 404 or 409).</summary>
public sealed class ManagementException(ManagementError kind, string message) : Exception(message)
{
    public ManagementError Kind { get; } = kind;
}
