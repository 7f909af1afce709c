using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;

namespace Nvme.Core.Auth;

/// <summary>
/// The controller side of DH-HMAC-CHAP on one queue (NVMe base spec 2.0, 8.13.5; every queue of a controller that
/// requires it authenticates, the admin queue first, as the Linux host does it). Authentication Send carries the
/// host's messages in, Authentication Receive the controller's out:
/// <code>
///   Send Negotiate  -> (pick hash, DH group)       Receive -> Challenge (C1, S1, g^y)
///   Send Reply      -> check R1, take C2/S2, g^x   Receive -> Success1 (R2 if bidirectional)
///   Send Success2   -> authenticated (bidirectional only; unidirectional is done at the Reply)
/// </code>
/// Anything wrong (a bad response, an unusable hash or group, a message out of turn, a wrong T_ID or length) turns
/// into a pending Failure1, which the next Receive returns before the connection closes (the kernel target's
/// fatal error: a host does not get to guess twice on one connection). A new Negotiate on an authenticated queue
/// re-authenticates; the queue stays usable while it runs and closes if it fails. An exchange that stops midway
/// is dropped after <see cref="TargetLimits.AuthenticationTimeout"/> (<see cref="Expire"/>), and a queue that never
/// authenticates is closed then too. Commands on one queue may run concurrently: a lock orders them.
/// </summary>
internal sealed class QueueAuthentication
{
    private enum Step { Negotiate, Challenge, Reply, Success1, Success2, Failure1 }

    private readonly Lock _lock = new();
    private readonly FabricQueue _queue;
    private readonly Controller _ctrl;
    private Step _step = Step.Negotiate;
    private ushort _tid;
    private DhchapHash _hash;
    private FfdheGroup? _group;
    private BigInteger _privateKey;
    private byte[]? _c1, _c2, _sessionKey;
    private uint _s1, _s2;
    private DhchapFailure _failure;
    private long _lastStep;
    private readonly long _created = Environment.TickCount64;
    private volatile bool _authenticated;
    private bool _straySuccess2; // see Send

    public QueueAuthentication(FabricQueue queue, Controller ctrl)
    {
        _queue = queue;
        _ctrl = ctrl;
    }

    /// <summary>The queue completed an authentication (and has not failed one since).</summary>
    public bool Authenticated => _authenticated;
    public bool Bidirectional { get; private set; }
    public DhchapHash Hash => _hash;
    public DhGroupId DhGroup => _group?.Id ?? DhGroupId.Null;
    public int Authentications { get; private set; }

    /// <summary>Handles one Authentication Send message. Returns the command's status; the protocol outcome is in
    /// the state (a failure shows in the next Receive).</summary>
    public NvmeStatus Send(ReadOnlySpan<byte> m, NvmeRequest req)
    {
        lock (_lock)
        {
            _lastStep = Environment.TickCount64;
            if (_step == Step.Failure1) return NvmeStatus.Success; // the Receive that reports it is all that is left
            if (m.Length < DhchapMessages.FailureSize) return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"a {m.Length}-byte message");
            byte type = m[0], id = m[1];
            if (type == DhchapMessages.TypeCommon && id == DhchapMessages.Negotiate) return Negotiate(m);
            if (id == DhchapMessages.Failure2 && type is DhchapMessages.TypeCommon or DhchapMessages.TypeDhchap)
            {
                // The host refused the controller (R2 mismatch) or gave up: nothing more on this connection.
                string why = $"the host sent Failure2 (reason {m[7]:x2}): it did not accept the controller's response";
                Record(AuthFailure.HostRejected, why);
                Reset(Step.Negotiate);
                _authenticated = false;
                req.CloseAfterResponse = true;
                return NvmeStatus.Success;
            }
            if (type != DhchapMessages.TypeDhchap)
                return Fail(DhchapFailure.IncorrectMessage, AuthFailure.Protocol, $"unknown message type {type:x2}/{id:x2}");
            if (_straySuccess2 && _step == Step.Negotiate && id == DhchapMessages.Success2 && DhchapMessages.TransactionId(m) == _tid)
            {
                // Early Linux hosts (the first in-band authentication kernels) send Success2 after a unidirectional
                // Success1 too; the transaction is already complete, so it is taken and ignored.
                _straySuccess2 = false;
                return NvmeStatus.Success;
            }
            _straySuccess2 = false;
            var expected = _step switch { Step.Reply => DhchapMessages.Reply, Step.Success2 => DhchapMessages.Success2, _ => (byte)0xFF };
            if (id != expected) return Fail(DhchapFailure.IncorrectMessage, AuthFailure.Protocol, $"message {id:x2} out of turn (step {_step})");
            if (DhchapMessages.TransactionId(m) != _tid)
                return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"transaction ID {DhchapMessages.TransactionId(m)} instead of {_tid}");
            if (id == DhchapMessages.Reply) return Reply(m);
            if (m.Length < DhchapMessages.HeaderSize) return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"a {m.Length}-byte Success2");
            Succeeded();
            return NvmeStatus.Success;
        }
    }

    /// <summary>Fills an Authentication Receive buffer (AL bytes, zero beyond the message).</summary>
    public NvmeStatus Receive(Span<byte> buffer, NvmeRequest req)
    {
        lock (_lock)
        {
            _lastStep = Environment.TickCount64;
            buffer.Clear();
            switch (_step)
            {
                case Step.Challenge: return Challenge(buffer);
                case Step.Success1: return Success1(buffer, req);
                case Step.Failure1: break;
                default:
                    Fail(DhchapFailure.Failed, AuthFailure.Protocol, $"Authentication Receive out of turn (step {_step})");
                    break;
            }
            if (buffer.Length < DhchapMessages.FailureSize) return NvmeStatus.InvalidField;
            WriteFailure1(buffer);
            return NvmeStatus.Success;
            void WriteFailure1(Span<byte> b)
            {
                DhchapMessages.BuildFailure(DhchapMessages.Failure1, _tid, _failure).CopyTo(b);
                Reset(Step.Negotiate);
                _authenticated = false;
                req.CloseAfterResponse = true; // as nvmet's fatal error after Failure1: the host starts over on a new connection
            }
        }
    }

    private NvmeStatus Negotiate(ReadOnlySpan<byte> m)
    {
        Reset(Step.Negotiate);
        _straySuccess2 = false;
        _tid = DhchapMessages.TransactionId(m);
        if (_queue.QueueId == 0)
        {
            // (Re-)authentication of the admin queue picks up the host's current secrets (key rotation); I/O
            // queues use what their controller's admin queue authenticated with.
            _ctrl.Authentication = _ctrl.Subsystem.GetHostAuthentication(_ctrl.HostNqn);
        }
        var auth = _ctrl.Authentication;
        if (auth is null) return Fail(DhchapFailure.NotUsable, AuthFailure.Unusable, "the host has no DH-HMAC-CHAP secret any more");
        if (m.Length < DhchapMessages.NegotiateHeaderSize + DhchapMessages.DescriptorSize)
            return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"a {m.Length}-byte Negotiate");
        if (m[6] != 0) return Fail(DhchapFailure.ConcatMismatch, AuthFailure.Unusable, "secure channel concatenation (SC_C) is not supported");
        if (m[7] != 1) return Fail(DhchapFailure.HashUnusable, AuthFailure.Protocol, $"NAPD {m[7]} (one DH-HMAC-CHAP descriptor expected)");
        var d = m.Slice(DhchapMessages.NegotiateHeaderSize, DhchapMessages.DescriptorSize);
        if (d[0] != DhchapMessages.DhchapAuthId) return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"AUTHID {d[0]:x2} is not DH-HMAC-CHAP");
        int halen = d[2], dhlen = d[3];
        if (halen > DhchapMessages.MaxIds || dhlen > DhchapMessages.MaxIds)
            return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"HALEN {halen} / DHLEN {dhlen} above 30");
        var hashes = d.Slice(4, halen);
        var groups = d.Slice(4 + DhchapMessages.MaxIds, dhlen);

        DhchapHash? hash = null;
        byte want = (byte)(auth.Hash ?? DhchapHash.Sha256);
        if (hashes.Contains(want)) hash = (DhchapHash)want;
        else if (auth.Hash is null)
            foreach (byte h in hashes) if (DhchapHashes.IsDefined(h)) { hash = (DhchapHash)h; break; }
        if (hash is null) return Fail(DhchapFailure.HashUnusable, AuthFailure.Unusable, $"the host offers no usable hash{(auth.Hash is { } ah ? $" ({ah.Name()} required)" : "")}");

        DhGroupId? group = null;
        byte wantGroup = (byte)(auth.DhGroup ?? DhGroupId.Null);
        if (groups.Contains(wantGroup)) group = (DhGroupId)wantGroup;
        else if (auth.DhGroup is null)
            foreach (byte g in groups) if (FfdheGroup.IsDefined(g)) { group = (DhGroupId)g; break; }
        if (group is null)
            return Fail(DhchapFailure.DhGroupUnusable, AuthFailure.Unusable, $"the host offers no usable DH group{(auth.DhGroup is { } ag ? $" ({FfdheGroup.Name(ag)} required)" : "")}");
        _hash = hash.Value;
        _group = FfdheGroup.Get(group.Value);
        _step = Step.Challenge;
        return NvmeStatus.Success;
    }

    private NvmeStatus Challenge(Span<byte> b)
    {
        int hl = _hash.Length();
        int dhvlen = _group?.Length ?? 0;
        if (b.Length < DhchapMessages.HeaderSize + hl + dhvlen) return NvmeStatus.InvalidField; // the host may ask again with room
        _c1 = RandomNumberGenerator.GetBytes(hl);
        do _s1 = BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(4)); while (_s1 == 0);
        DhchapMessages.WriteHeader(b, DhchapMessages.TypeDhchap, DhchapMessages.Challenge, _tid);
        b[6] = (byte)hl;
        b[8] = (byte)_hash;
        b[9] = (byte)DhGroup;
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], (ushort)dhvlen);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], _s1);
        _c1.CopyTo(b[16..]);
        if (_group != null)
        {
            _privateKey = _group.NewPrivateKey();
            _group.PublicValue(_privateKey).CopyTo(b[(16 + hl)..]);
        }
        _step = Step.Reply;
        return NvmeStatus.Success;
    }

    private NvmeStatus Reply(ReadOnlySpan<byte> m)
    {
        int hl = _hash.Length();
        if (m.Length < DhchapMessages.HeaderSize) return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"a {m.Length}-byte Reply");
        int dhvlen = BinaryPrimitives.ReadUInt16LittleEndian(m[10..]);
        if (m[6] != hl) return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"Reply HL {m[6]} for {_hash.Name()} ({hl})");
        if (DhchapMessages.HeaderSize + 2 * hl + dhvlen > m.Length)
            return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"Reply of {m.Length} bytes shorter than HL {hl} and DHVLEN {dhvlen} need");
        bool cvalid = m[8] != 0;
        uint s2 = BinaryPrimitives.ReadUInt32LittleEndian(m[12..]);
        var rval = m.Slice(DhchapMessages.HeaderSize, hl);
        var challenge = _c1!;
        if (_group != null)
        {
            if (dhvlen != _group.Length) return Fail(DhchapFailure.DhGroupUnusable, AuthFailure.Protocol, $"DHVLEN {dhvlen} for {FfdheGroup.Name(_group.Id)}");
            _sessionKey = _group.SharedSecret(_privateKey, m.Slice(DhchapMessages.HeaderSize + 2 * hl, dhvlen));
            if (_sessionKey is null) return Fail(DhchapFailure.DhGroupUnusable, AuthFailure.Protocol, "the host's DH value is out of range");
            challenge = DhchapCrypto.AugmentedChallenge(_hash, _sessionKey, _c1!);
        }
        else if (dhvlen != 0) return Fail(DhchapFailure.IncorrectPayload, AuthFailure.Protocol, $"DHVLEN {dhvlen} with the null DH group");
        var auth = _ctrl.Authentication!;
        var key = auth.HostSecret.Transform(_ctrl.HostNqn);
        var expected = DhchapCrypto.HostResponse(_hash, key, challenge, _s1, _tid, _ctrl.HostNqn, _ctrl.Subsystem.Nqn);
        CryptographicOperations.ZeroMemory(key);
        if (!CryptographicOperations.FixedTimeEquals(expected, rval))
            return Fail(DhchapFailure.Failed, AuthFailure.BadResponse, "the host's response does not match its secret");
        if (cvalid && s2 != 0)
        {
            if (auth.ControllerSecret is null)
                return Fail(DhchapFailure.Failed, AuthFailure.Unusable, "the host asks for bidirectional authentication but no controller secret is set");
            _c2 = m.Slice(DhchapMessages.HeaderSize + hl, hl).ToArray();
            _s2 = s2;
            Bidirectional = true;
        }
        else
        {
            Bidirectional = false;
            Succeeded(keepStep: true); // unidirectional: done once the response checks out (nvmet does the same)
        }
        _step = Step.Success1;
        return NvmeStatus.Success;
    }

    private NvmeStatus Success1(Span<byte> b, NvmeRequest req)
    {
        int hl = _hash.Length();
        int length = DhchapMessages.HeaderSize + (Bidirectional ? hl : 0);
        if (b.Length < length) return NvmeStatus.InvalidField;
        DhchapMessages.WriteHeader(b, DhchapMessages.TypeDhchap, DhchapMessages.Success1, _tid);
        b[6] = (byte)hl;
        if (!Bidirectional)
        {
            Reset(Step.Negotiate);
            _straySuccess2 = true;
            return NvmeStatus.Success;
        }
        var challenge = _sessionKey is null ? _c2! : DhchapCrypto.AugmentedChallenge(_hash, _sessionKey, _c2!);
        var key = _ctrl.Authentication!.ControllerSecret!.Transform(_ctrl.Subsystem.Nqn);
        var r2 = DhchapCrypto.ControllerResponse(_hash, key, challenge, _s2, _tid, _ctrl.Subsystem.Nqn, _ctrl.HostNqn);
        CryptographicOperations.ZeroMemory(key);
        b[8] = 1; // RVALID
        r2.CopyTo(b[16..]);
        _step = Step.Success2;
        return NvmeStatus.Success;
    }

    private void Succeeded(bool keepStep = false)
    {
        _authenticated = true;
        Authentications++;
        Interlocked.Increment(ref _queue.Target.Metrics.AuthenticationsSucceeded);
        if (_queue.QueueId == 0) _queue.Target.Log.AuthenticationSucceeded(_ctrl.HostNqn, _queue.Transport.PeerAddress, _ctrl.Subsystem.Nqn, _ctrl.Cntlid, _queue.QueueId,
            _hash.Name(), FfdheGroup.Name(DhGroup), Bidirectional ? "bidirectional" : "unidirectional");
        if (!keepStep) Reset(Step.Negotiate);
    }

    private NvmeStatus Fail(DhchapFailure reason, AuthFailure metric, string why)
    {
        Record(metric, why);
        Reset(Step.Failure1);
        _failure = reason;
        _authenticated = false;
        return NvmeStatus.Success; // the command worked; the host learns of the failure from the Failure1 it receives next
    }

    private void Record(AuthFailure metric, string why)
    {
        _queue.Target.Metrics.AuthenticationFailed(metric);
        _queue.Target.Log.AuthenticationFailed(_ctrl.HostNqn, _queue.Transport.PeerAddress, _ctrl.Subsystem.Nqn, _ctrl.Cntlid, _queue.QueueId, why);
    }

    /// <summary>Forgets the exchange's values (challenges, DH private key, session key).</summary>
    private void Reset(Step step)
    {
        _step = step;
        if (_c1 != null) CryptographicOperations.ZeroMemory(_c1);
        if (_c2 != null) CryptographicOperations.ZeroMemory(_c2);
        if (_sessionKey != null) CryptographicOperations.ZeroMemory(_sessionKey);
        _c1 = _c2 = _sessionKey = null;
        _privateKey = BigInteger.Zero;
        _s1 = _s2 = 0;
    }

    /// <summary>Called by the target's timer. An exchange idle for longer than <paramref name="timeoutMs"/> is
    /// dropped (its state freed); a queue that has not authenticated that long after its Connect is closed.
    /// Returns a reason when the queue must be closed.</summary>
    public string? Expire(long now, long timeoutMs)
    {
        lock (_lock)
        {
            bool midway = _step != Step.Negotiate;
            if (midway && now - _lastStep > timeoutMs)
            {
                Record(AuthFailure.Timeout, $"the authentication exchange stopped at step {_step} for more than {timeoutMs} ms");
                Reset(Step.Negotiate);
                if (!_authenticated) return "authentication abandoned";
                return null; // a re-authentication that stalled: the queue keeps its earlier authentication
            }
            if (!_authenticated && !midway && now - Math.Max(_created, _lastStep) > timeoutMs)
            {
                Record(AuthFailure.Timeout, $"the queue did not authenticate within {timeoutMs} ms of its Connect");
                return "no authentication";
            }
            return null;
        }
    }

    /// <summary>Whether an exchange is under way (tests and the timer).</summary>
    public bool InProgress { get { lock (_lock) return _step != Step.Negotiate; } }
}

/// <summary>Why an authentication failed (the reason label of nvmet_authentications_failed_total).</summary>
public enum AuthFailure { BadResponse, HostRejected, Unusable, Protocol, Timeout }

internal static class AuthFailures
{
    public static readonly string[] Labels = ["bad_response", "host_rejected", "unusable", "protocol", "timeout"];
}
