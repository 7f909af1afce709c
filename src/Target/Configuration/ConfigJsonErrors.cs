using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Target.Configuration;

/// <summary>
/// Turns a System.Text.Json error in a configuration file into a message for the operator: 1-based line and
/// column (the serializer counts lines from 0 and columns in UTF-8 bytes), the place as a plain path
/// ("subsystems[0].namespaces[1]"), and plain words instead of .NET type names — an unknown field lists the
/// fields that are allowed where it stands.
/// </summary>
public static partial class ConfigJsonErrors
{
    public static string Describe(JsonException e, string json, Type root, JsonSerializerOptions options)
    {
        var segments = Segments(e.Path);
        string path = Plain(segments);
        int line = (int)(e.LineNumber ?? 0) + 1;
        string lineText = LineText(json, line);
        int column = Column(lineText, e.BytePositionInLine ?? 0);

        var unknown = UnknownField().Match(e.Message);
        if (unknown.Success && segments.Count > 0)
        {
            string field = unknown.Groups[1].Value;
            var parent = segments[..^1];
            // Point at the field's name: the serializer's position is past it (after the colon).
            int before = Math.Clamp(column - 1, 0, lineText.Length);
            int at = before > 0 ? lineText.LastIndexOf($"\"{field}\"", before - 1, StringComparison.Ordinal) : -1;
            if (at >= 0) column = at + 1;
            var fields = TypeAt(root, parent, options) is Type t ? Fields(t, options) : [];
            return $"unknown field '{field}' in {(parent.Count == 0 ? "the top level" : Plain(parent))} at line {line}, column {column}" +
                (fields.Count > 0 ? $"; the fields there are: {string.Join(", ", fields)}" : "");
        }
        if (e.Message.StartsWith("The JSON value could not be converted to ", StringComparison.Ordinal))
        {
            // Point at the field's name: the serializer's position is past the value.
            if (segments.Count > 0 && !segments[^1].StartsWith('[') &&
                lineText.LastIndexOf($"\"{segments[^1]}\"", StringComparison.OrdinalIgnoreCase) is int name and >= 0 && name < column)
                column = name + 1;
            return $"{(path.Length == 0 ? "the file" : path)} at line {line}, column {column}: expected {Expected(TypeAt(root, segments, options))}";
        }
        // Syntax errors and converters' own messages: keep the words, drop .NET's position suffix.
        string message = PositionSuffix().Replace(e.Message, "").TrimEnd();
        return $"line {line}, column {column}: {message}{(path.Length > 0 ? $" (in {path})" : "")}";
    }

    /// <summary>"$.subsystems[0]['odd name']" -> ["subsystems", "[0]", "odd name"].</summary>
    private static List<string> Segments(string? jsonPath)
    {
        var list = new List<string>();
        if (string.IsNullOrEmpty(jsonPath)) return list;
        foreach (Match m in PathSegment().Matches(jsonPath))
            list.Add(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Success ? $"[{m.Groups[2].Value}]" : m.Groups[3].Value.Replace("''", "'", StringComparison.Ordinal));
        return list;
    }

    private static string Plain(IEnumerable<string> segments)
    {
        var b = new StringBuilder();
        foreach (var s in segments)
        {
            if (!s.StartsWith('[') && b.Length > 0) b.Append('.');
            b.Append(s);
        }
        return b.ToString();
    }

    private static string LineText(string json, int line)
    {
        var lines = json.Split('\n');
        return line - 1 < lines.Length ? lines[line - 1].TrimEnd('\r') : "";
    }

    /// <summary>1-based column in characters from a 0-based position in UTF-8 bytes.</summary>
    private static int Column(string lineText, long bytePosition)
    {
        var bytes = Encoding.UTF8.GetBytes(lineText);
        int n = (int)Math.Clamp(bytePosition, 0, bytes.Length);
        return Encoding.UTF8.GetCharCount(bytes, 0, n) + 1;
    }

    /// <summary>The type a JSON path leads to from <paramref name="root"/>, or null when it cannot be followed.</summary>
    private static Type? TypeAt(Type root, IEnumerable<string> segments, JsonSerializerOptions options)
    {
        try
        {
            Type? type = root;
            foreach (var s in segments)
            {
                if (type is null) return null;
                var info = options.GetTypeInfo(Nullable.GetUnderlyingType(type) ?? type);
                type = s.StartsWith('[')
                    ? info.ElementType
                    : info.Properties.FirstOrDefault(p => string.Equals(p.Name, s, StringComparison.OrdinalIgnoreCase))?.PropertyType;
            }
            return type is null ? null : Nullable.GetUnderlyingType(type) ?? type;
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or ArgumentException)
        {
            return null;
        }
    }

    private static List<string> Fields(Type type, JsonSerializerOptions options)
    {
        try { return [.. options.GetTypeInfo(type).Properties.Select(p => p.Name)]; }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or ArgumentException) { return []; }
    }

    private static string Expected(Type? type)
    {
        if (type is null) return "a different value";
        if (type == typeof(bool)) return "true or false";
        if (type == typeof(string)) return "a string in double quotes";
        if (type == typeof(Guid)) return "a UUID in double quotes (e.g. \"4cdea003-f395-46c6-bc5f-c6c734c4a8e8\")";
        if (type.IsPrimitive || type == typeof(decimal))
            return type == typeof(double) || type == typeof(float) || type == typeof(decimal) ? "a number" : "a whole number";
        if (type != typeof(string) && typeof(System.Collections.IEnumerable).IsAssignableFrom(type)) return "a list: [ ... ]";
        return "an object: { ... }";
    }

    [GeneratedRegex(@"^The JSON property '(.*)' could not be mapped to any \.NET member")]
    private static partial Regex UnknownField();

    [GeneratedRegex(@"\s*Path: \S* \| LineNumber: \d+ \| BytePositionInLine: \d+\.$")]
    private static partial Regex PositionSuffix();

    [GeneratedRegex(@"\.([^.\[]+)|\[(\d+)\]|\['((?:[^']|'')*)'\]")]
    private static partial Regex PathSegment();
}
