using System.Text.RegularExpressions;
using Xunit.Sdk;

namespace Integration.Tests.LinuxHost;

/// <summary>Assertions on guest output that attach the whole console when they fail.</summary>
internal static class GuestAssert
{
    public static void Check(bool ok, string what, GuestVm vm)
    {
        if (!ok) throw new XunitException($"{what}\n----- guest console -----\n{vm.Console}");
    }

    /// <summary>The value of "name : value" in nvme-cli's id-ctrl / id-ns output.</summary>
    public static string Field(string idOutput, string name)
    {
        var m = Regex.Match(idOutput, $@"^{Regex.Escape(name)}\s*:\s*(.*?)\s*$", RegexOptions.Multiline);
        return m.Success ? m.Groups[1].Value : $"<no {name}>";
    }
}
