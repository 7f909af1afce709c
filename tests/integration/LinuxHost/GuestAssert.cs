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

    /// <summary>The guest script's section <paramref name="name"/> (output and exit code); fails when it is missing.</summary>
    public static (string Output, int Rc) Section(Dictionary<string, (string Output, int Rc)> s, string name, GuestVm vm)
    {
        Check(s.ContainsKey(name), $"guest section '{name}' missing (script died?)", vm);
        return s[name];
    }

    /// <summary>The value of "name : value" in nvme-cli's id-ctrl / id-ns output.</summary>
    public static string Field(string idOutput, string name)
    {
        var m = Regex.Match(idOutput, $@"^{Regex.Escape(name)}\s*:\s*(.*?)\s*$", RegexOptions.Multiline);
        return m.Success ? m.Groups[1].Value : $"<no {name}>";
    }
}
