using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class SmartLogTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SmartCounters_MoveByExactlyWhatWasDone()
    {
        await using var target = await TestTarget.StartAsync(output, c =>
            c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "memory", Size = "8M" }));
        await using var host = await target.ConnectWithIoAsync(2);

        async Task<SmartHealthLog> Smart(uint nsid) =>
            MemoryMarshal.Read<SmartHealthLog>(await host.GetLogPageAsync(LogPageId.SmartHealth, SmartHealthLog.Size, nsid: nsid));

        var before = await Smart(0xFFFFFFFF);
        var before1 = await Smart(1);
        int[] writeSizes = [512, 4096, 16384, 131072, 1 << 20];
        int[] readSizes = [4096, 65536, 1 << 20];
        long written = 0, read = 0;
        for (int i = 0; i < writeSizes.Length; i++)
        {
            (await host.WriteAsync(i % 2, 1, (ulong)i * 4096, TestData.Random(writeSizes[i], i))).EnsureSuccess();
            written += writeSizes[i];
        }
        for (int i = 0; i < readSizes.Length; i++)
        {
            (await host.ReadAsync(i % 2, 1, 0, new byte[readSizes[i]])).EnsureSuccess();
            read += readSizes[i];
        }
        // Neither of these is a host read or write command.
        (await host.FlushAsync(0, 1)).EnsureSuccess();
        (await host.KeepAliveAsync()).EnsureSuccess();

        var after = await Smart(0xFFFFFFFF);
        var after1 = await Smart(1);
        var ns2 = await Smart(2);
        Assert.Equal(before.HostWriteCommands + (ulong)writeSizes.Length, after.HostWriteCommands);
        Assert.Equal(before.HostReadCommands + (ulong)readSizes.Length, after.HostReadCommands);
        Assert.Equal(before1.HostWriteCommands + (ulong)writeSizes.Length, after1.HostWriteCommands);
        Assert.Equal(before1.HostReadCommands + (ulong)readSizes.Length, after1.HostReadCommands);
        Assert.Equal(0ul, ns2.HostReadCommands);
        Assert.Equal(0ul, ns2.HostWriteCommands);

        // A fresh target: data units (thousands of 512-byte units, rounded up) are exactly what was moved.
        Assert.Equal(0ul, before.HostWriteCommands);
        Assert.Equal(0ul, before.DataUnitsWritten);
        Assert.Equal((ulong)((written / 512 + 999) / 1000), after.DataUnitsWritten);
        Assert.Equal((ulong)((read / 512 + 999) / 1000), after.DataUnitsRead);
        Assert.Equal(0ul, ns2.DataUnitsRead);

        // Reading the log itself changes nothing.
        var again = await Smart(0xFFFFFFFF);
        Assert.Equal(after.HostReadCommands, again.HostReadCommands);
        Assert.Equal(after.HostWriteCommands, again.HostWriteCommands);
        Assert.Equal(after.DataUnitsRead, again.DataUnitsRead);
    }
}
