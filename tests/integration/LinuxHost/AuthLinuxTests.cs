using Nvme.Core.Auth;
using Target;
using Target.Configuration;
using Xunit.Abstractions;
using Xunit.Sdk;

using static Integration.Tests.LinuxHost.GuestAssert;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// DH-HMAC-CHAP against OUR target from a real Linux 6.12 host (nvme-cli's <c>--dhchap-secret</c> and
/// <c>--dhchap-ctrl-secret</c>): what AuthReferenceTests records for the kernel's own nvmet must happen here too —
/// the right secrets connect and do I/O (one-way and bidirectional, a SHA-384/ffdhe2048 subsystem with a key
/// transformed by SHA-256), no secret / a wrong host secret / a wrong controller secret fail cleanly with the same
/// host-side errors (-ENOKEY, -EKEYREJECTED), no controller is left behind, and the target keeps serving: the right
/// secret still connects after the failures. The host entry has a secret on a subsystem open to any host, so it
/// must authenticate there too. The same keys and cases then run against the guest kernel's own nvmet in the same
/// boot, and each outcome (connected or not, nvme-cli's message, controller authenticated) must be the same.
/// </summary>
public sealed class AuthLinuxTests(ITestOutputHelper output)
{
    private const string StrictNqn = "nqn.2026-01.io.nvmetcptarget:linux-auth-strict";

    /// <summary>The cases run against both targets with the same keys: which host secret and controller secret the
    /// host gives (right, wrong or none).</summary>
    private sealed record Case(string Name, Func<DhchapSecret, DhchapSecret, DhchapSecret?> Host, Func<DhchapSecret, DhchapSecret, DhchapSecret?> Ctrl);

    private static readonly Case[] Compared =
    [
        new("uni", (right, _) => right, (_, _) => null),
        new("bidi", (right, _) => right, (right, _) => right),
        new("none", (_, _) => null, (_, _) => null),
        new("wrong-host", (_, wrong) => wrong, (_, _) => null),
        new("wrong-ctrl", (right, _) => right, (_, wrong) => wrong),
    ];

    [Theory]
    [MemberData(nameof(GuestKernels.Only612), MemberType = typeof(GuestKernels))]
    public async Task Linux612Host_AuthenticatesWithDhHmacChap_WrongOrMissingSecretsFailCleanly(GuestKernel kernel)
    {
        var hostKey = DhchapSecret.Generate(32, 0);
        var ctrlKey = DhchapSecret.Generate(48, 0);
        var wrongHost = DhchapSecret.Generate(32, 0);
        var wrongCtrl = DhchapSecret.Generate(48, 0);
        var transformed = DhchapSecret.Generate(32, 1); // DHHC-1:01: the key is HMAC-SHA-256(key, host NQN || ...)
        var config = LinuxTarget.Config(configure: s =>
        {
            s.AllowedHosts.Add(GuestVm.HostNqn);
            s.AllowedHosts.Auth[GuestVm.HostNqn] = new HostAuthConfig { DhchapSecret = hostKey.Representation, DhchapCtrlSecret = ctrlKey.Representation };
        });
        var strict = new SubsystemConfig
        {
            Nqn = StrictNqn,
            Serial = "LNXAUTH00001",
            Namespaces = { new NamespaceConfig { Nsid = 1, Backend = "memory", Size = "16M" } },
        };
        strict.AllowedHosts.Add(GuestVm.HostNqn);
        strict.AllowedHosts.Auth[GuestVm.HostNqn] = new HostAuthConfig
        {
            DhchapSecret = transformed.Representation, DhchapCtrlSecret = ctrlKey.Representation, DhchapHash = "sha384", DhchapDhgroup = "ffdhe2048",
        };
        config.Subsystems.Add(strict);

        using var logs = LinuxTarget.Logs(output.WriteLine);
        await using var host = await TargetHost.StartAsync(config, logs);
        int port = host.Endpoints[0].Port;
        string Try(string name, DhchapSecret? hs, DhchapSecret? cs, string nqn = LinuxTarget.Nqn) =>
            GuestScripts.AuthTryLine(name, "10.0.2.2", port, nqn, hs?.Representation, cs?.Representation);
        var script = GuestScripts.Prelude + GuestScripts.AuthTry
            + Try("uni", hostKey, null)
            + Try("bidi", hostKey, ctrlKey)
            + Try("none", null, null)
            + Try("wrong-host", wrongHost, null)
            + Try("wrong-ctrl", hostKey, wrongCtrl)
            + Try("strict-bidi", transformed, ctrlKey, StrictNqn)
            + Try("strict-wrong", hostKey, null, StrictNqn)
            + Try("after-failures", hostKey, ctrlKey)
            // The same keys and cases against the guest kernel's own nvmet: the host must see the same outcomes.
            + $"HK='{hostKey.Representation}'; REF={AuthReferenceTests.RefNqn}\n" + AuthReferenceTests.KernelTargetSetup
            + $"set_auth \"hmac(sha256)\" null '{ctrlKey.Representation}'\n"
            + string.Concat(Compared.Select(c => GuestScripts.AuthTryLine("nvmet-" + c.Name, "127.0.0.1", 4420, AuthReferenceTests.RefNqn,
                c.Host(hostKey, wrongHost)?.Representation, c.Ctrl(ctrlKey, wrongCtrl)?.Representation)));

        await using var vm = GuestVm.Start(script, TimeSpan.FromMinutes(6), kernel: kernel);
        int rc = await vm.WaitForExitAsync(TimeSpan.FromMinutes(7));
        Check(rc == 0, $"guest script exited {rc}", vm);
        var s = GuestVm.Sections(vm.Console);
        GuestAuthAttempt A(string name)
        {
            try { var a = GuestAuthAttempt.From(s, name); output.WriteLine(a.ToString()); return a; }
            catch (InvalidOperationException e) { throw new XunitException($"{e.Message}\n{vm.Console}"); }
        }

        foreach (var ok in new[] { "uni", "bidi", "strict-bidi", "after-failures" })
        {
            var a = A(ok);
            Check(a.Connected, $"{ok}: the right secrets did not connect and read\n{a}", vm);
            Check(a.Log("qid 0: authenticated").Any(), $"{ok}: the host did not log 'qid 0: authenticated'\n{a}", vm);
        }
        Check(A("bidi").Log("qid 0: controller authenticated").Any() && !A("uni").Log("controller authenticated").Any(),
            "only the bidirectional connect authenticates the controller", vm);
        Check(A("strict-bidi").Log("hmac(sha384)").Any() && A("strict-bidi").Log("ffdhe2048").Any(),
            "the strict subsystem's connect did not negotiate hmac(sha384) / ffdhe2048", vm);

        foreach (var bad in new[] { "none", "wrong-host", "wrong-ctrl", "strict-wrong" })
            Check(A(bad).FailedCleanly, $"{bad}: expected a clean failure\n{A(bad)}", vm);
        // The host sees what the kernel target makes it see (AuthReferenceTests).
        Check(A("none").Log("qid 0: no key").Any() && A("none").ConnectOutput.Contains("Required key not available"),
            "no secret: the host should log 'qid 0: no key' and fail with -ENOKEY", vm);
        foreach (var wrong in new[] { "wrong-host", "strict-wrong" })
            Check(A(wrong).Log("qid 0: authentication failed").Any() && A(wrong).ConnectOutput.Contains("Key was rejected by service"),
                $"{wrong}: the host should fail with -EKEYREJECTED after our Failure1", vm);
        Check(A("wrong-ctrl").Log("qid 0: controller authentication failed").Any() && A("wrong-ctrl").ConnectOutput.Contains("Key was rejected by service"),
            "wrong controller secret: the host should reject our controller response (-EKEYREJECTED)", vm);

        // Compared with the kernel target, case by case: the same outcome and the same nvme-cli message.
        foreach (var c in Compared)
        {
            GuestAuthAttempt ours = A(c.Name), theirs = A("nvmet-" + c.Name);
            Check(ours.Connected == theirs.Connected && ours.FailedCleanly == theirs.FailedCleanly, $"{c.Name}: ours {ours} but nvmet {theirs}", vm);
            string Message(GuestAuthAttempt a) => a.Connected ? "" : new[] { "Required key not available", "Key was rejected by service" }.FirstOrDefault(a.ConnectOutput.Contains) ?? a.ConnectOutput;
            Check(Message(ours) == Message(theirs), $"{c.Name}: nvme connect says '{Message(ours)}' with ours, '{Message(theirs)}' with nvmet", vm);
            Check(ours.Log("controller authenticated").Any() == theirs.Log("controller authenticated").Any(), $"{c.Name}: controller authentication differs", vm);
        }

        Assert.True(await Poll.UntilAsync(() => !host.Target.Controllers.Any(), TimeSpan.FromSeconds(10)), "our target kept a controller");
        output.WriteLine(string.Join("\n", host.Target.Controllers.Select(c => c.ToString())));
    }
}
