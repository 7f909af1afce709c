using Nvme.Core.Spec;

namespace Nvme.Core.Faults;

/// <summary>The I/O opcodes a fault can match, by the names the API and CLI use (nvme-cli's words).</summary>
public static class FaultOpcodes
{
    private static readonly (string Name, byte Opcode)[] Known =
    [
        ("flush", IoOpcode.Flush), ("write", IoOpcode.Write), ("read", IoOpcode.Read),
        ("write-zeroes", IoOpcode.WriteZeroes), ("dsm", IoOpcode.DatasetManagement),
    ];

    public static IEnumerable<string> Names => Known.Select(k => k.Name);

    public static string Name(byte opcode)
    {
        foreach (var (name, op) in Known) if (op == opcode) return name;
        return $"0x{opcode:x2}";
    }

    /// <summary>A name (read, write, ...) or a number (0x02).</summary>
    public static bool TryParse(string text, out byte opcode)
    {
        foreach (var (name, op) in Known)
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase)) { opcode = op; return true; }
        var t = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : null;
        if (t != null && byte.TryParse(t, System.Globalization.NumberStyles.HexNumber, null, out opcode)) return true;
        return byte.TryParse(text, out opcode);
    }
}
