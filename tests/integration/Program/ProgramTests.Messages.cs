namespace Integration.Tests.Program;

/// <summary>Start-up messages an operator reads first: configuration JSON errors with 1-based line and column and
/// plain words, a zero size, and a missing directory for a new file reported at once.</summary>
public sealed partial class ProgramTests
{
    private static async Task<string> ConfigErrorAsync(string json)
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, json);
            var (code, _, err) = await RunAsync("--config", file, "--api", "off");
            Assert.Equal(2, code);
            var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: ", StringComparison.Ordinal));
            Assert.StartsWith($"error: configuration file '{file}': ", line);
            return line[$"error: configuration file '{file}': ".Length..];
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public async Task ConfigJson_UnknownField_SaysWhereAndWhatIsAllowed()
    {
        var message = await ConfigErrorAsync("""
            {
              "ports": [ { "port": 0 } ],
              "subsystems": [
                { "nqn": "nqn.2026-01.io.example:a",
                  "foo": 1 } ]
            }
            """);
        Assert.StartsWith("unknown field 'foo' in subsystems[0] at line 5, column 7; the fields there are: nqn, serial, model, firmwareRevision,", message);
        Assert.Contains("allowedHosts", message);
        Assert.Contains("namespaces", message);
        Assert.DoesNotContain(".NET", message);

        var top = await ConfigErrorAsync("{\n  \"subsystem\": []\n}");
        Assert.StartsWith("unknown field 'subsystem' in the top level at line 2, column 3; the fields there are: ports, limits, subsystems,", top);
        var nested = await ConfigErrorAsync("""{ "subsystems": [ { "nqn": "nqn.2026-01.io.example:a", "namespaces": [ { "nsid": 1, "backend": "memory", "size": "1M", "sise": 2 } ] } ] }""");
        Assert.StartsWith("unknown field 'sise' in subsystems[0].namespaces[0] at line 1, column 120; the fields there are: nsid, backend, path, size,", nested);
    }

    [Fact]
    public async Task ConfigJson_WrongTypesAndSyntax_AreOneBasedAndPlain()
    {
        Assert.Equal("ports[0].port at line 3, column 16: expected a whole number", await ConfigErrorAsync("""
            {
              "ports": [
                { "id": 1, "port": "4420x" } ],
              "subsystems": [ { "nqn": "nqn.2026-01.io.example:a" } ]
            }
            """));
        Assert.Equal("subsystems at line 1, column 3: expected a list: [ ... ]", await ConfigErrorAsync("""{ "subsystems": { } }"""));
        Assert.Equal("subsystems[0].allowAnyHost at line 2, column 40: expected true or false",
            await ConfigErrorAsync("{ \"subsystems\": [\n  { \"nqn\": \"nqn.2026-01.io.example:a\", \"allowAnyHost\": \"yes\" } ] }"));
        var syntax = await ConfigErrorAsync("{\n  \"ports\": [ { \"port\": 0 } ],\n  x\n}");
        Assert.StartsWith("line 3, column 3: 'x' is an invalid start of a property name.", syntax);
        Assert.DoesNotContain("LineNumber", syntax);
    }

    [Theory]
    [InlineData("memory:0")]
    [InlineData("memory:0G")]
    public async Task MemoryZero_SaysTheSizeMustBeGreaterThanZero(string spec)
    {
        var (code, _, err) = await RunAsync("--namespace", spec, "--api", "off");
        Assert.Equal(2, code);
        Assert.Contains("namespace 1: size must be greater than zero", err);
        Assert.DoesNotContain("is not a size", err);
    }

    [Fact]
    public async Task MissingDirectory_IsReportedInTheFirstError_WithoutASizeToo()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-prog-nodir-");
        try
        {
            var image = Path.Combine(dir.FullName, "nodir", "x.img");
            var (code, _, err) = await RunAsync("--storage-dir", dir.FullName, "--namespace", $"file:{image}", "--api", "off");
            Assert.Equal(2, code);
            Assert.Contains($"directory '{Path.Combine(dir.FullName, "nodir")}' for backing file '{image}' does not exist; create it first", err);
            Assert.DoesNotContain("give a size", err);
        }
        finally { dir.Delete(recursive: true); }
    }
}
