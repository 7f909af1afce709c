using Integration.Tests.Management;
using Xunit.Abstractions;

namespace Integration.Tests.Program;

/// <summary>deploy/install.sh, the one line that gives a source checkout the nvme-tcp-target command: it installs
/// into a prefix, the linked command runs (through the symbolic link) and manages a running target.</summary>
public sealed class InstallScriptTests(ITestOutputHelper output)
{
    [Fact]
    public async Task InstallScript_InstallsACommandThatManagesARunningTarget()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root != null && !File.Exists(Path.Combine(root.FullName, "NvmeTcpTarget.sln"))) root = root.Parent;
        Assert.NotNull(root);
        var prefix = Directory.CreateTempSubdirectory("nvmet-prefix-");
        try
        {
            var install = await Deploy.Cmd.RunAsync(Path.Combine(root.FullName, "deploy", "install.sh"), [prefix.FullName], TimeSpan.FromMinutes(5));
            output.WriteLine(install.Out + install.Err);
            install.Ensure("deploy/install.sh");
            var command = Path.Combine(prefix.FullName, "bin", "nvme-tcp-target");
            Assert.Equal(Path.Combine(prefix.FullName, "lib", "nvme-tcp-target", "nvme-tcp-target"), File.ResolveLinkTarget(command, returnFinalTarget: false)!.FullName);
            Assert.Contains($"installed {command}", install.Out);

            var version = (await Deploy.Cmd.RunAsync(command, ["--version"], TimeSpan.FromSeconds(60))).Ensure("nvme-tcp-target --version");
            Assert.Matches(@"^\d+\.\d+\.\d+", version.Out.Trim());
            await using var t = await ApiTarget.StartAsync(output);
            var list = (await Deploy.Cmd.RunAsync(command, ["subsys", "list", "--api", t.ApiUrl], TimeSpan.FromSeconds(60))).Ensure("nvme-tcp-target subsys list");
            Assert.Contains(ApiTarget.Nqn, list.Out);

            var usage = await Deploy.Cmd.RunAsync(Path.Combine(root.FullName, "deploy", "install.sh"), ["a", "b"], TimeSpan.FromSeconds(30));
            Assert.Equal(2, usage.Code);
            Assert.Contains("deploy/install.sh [PREFIX]", usage.Out);
        }
        finally { prefix.Delete(recursive: true); }
    }
}
