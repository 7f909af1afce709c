using Integration.Tests.Initiator;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class PersistenceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task FileNamespace_DataSurvivesTargetRestart()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-inproc-");
        try
        {
            var path = Path.Combine(dir.FullName, "ns1.img");
            void Configure(TargetConfig c)
            {
                c.Storage = new StorageConfig { Directories = [dir.FullName] };
                c.Subsystems[0].Namespaces = [new NamespaceConfig { Nsid = 1, Backend = "file", Path = path, Size = "64M" }];
            }

            var chunks = new (ulong Lba, byte[] Data)[]
            {
                (0, TestData.Random(512, 1)),
                (100, TestData.Random(4096, 2)),           // in-capsule
                (1000, TestData.Random(128 * 1024, 3)),    // one R2T
                (131000, TestData.Random(16384, 4)),       // near the end
            };
            await using (var target = await TestTarget.StartAsync(output, Configure))
            {
                await using var host = await target.ConnectWithIoAsync(1);
                foreach (var (lba, data) in chunks) (await host.WriteAsync(0, 1, lba, data)).EnsureSuccess();
                // No flush: stopping the target must make the data durable by itself.
            }
            Assert.Equal(64L << 20, new FileInfo(path).Length);

            await using (var target = await TestTarget.StartAsync(output, Configure))
            {
                await using var host = await target.ConnectWithIoAsync(1);
                foreach (var (lba, data) in chunks)
                {
                    var back = new byte[data.Length];
                    (await host.ReadAsync(0, 1, lba, back)).EnsureSuccess();
                    Assert.True(data.AsSpan().SequenceEqual(back), $"data at LBA {lba} did not survive the restart");
                }
                // Never-written blocks read as zeros.
                var zeros = new byte[4096];
                (await host.ReadAsync(0, 1, 50000, zeros)).EnsureSuccess();
                Assert.All(zeros, b => Assert.Equal(0, b));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
