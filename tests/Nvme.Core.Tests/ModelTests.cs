using System.Diagnostics;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;

namespace Nvme.Core.Tests;

/// <summary>NQN validation, namespace identifiers and the block stores.</summary>
public class ModelTests
{
    [Theory]
    [InlineData("nqn.2014-08.org.nvmexpress.discovery")]
    [InlineData("nqn.2016-06.io.spdk:cnode1")]
    [InlineData("nqn.2024-01.com.example:storage.disk-1")]
    [InlineData("nqn.2024-01.com.example")]
    [InlineData("nqn.2014-08.org.nvmexpress:uuid:14bda89c-1d6f-4471-b495-db452b9b96ed")]
    public void Valid_nqns(string nqn) => Assert.Null(Subsystem.ValidateNqn(nqn));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("iqn.2024-01.com.example:x")]
    [InlineData("nqn.24-01.com.example:x")]
    [InlineData("nqn.2024-1.com.example:x")]
    [InlineData("nqn.2024-01.")]
    [InlineData("nqn.2024-01.-bad:x")]
    [InlineData("nqn.2014-08.org.nvmexpress:uuid:not-a-uuid")]
    public void Invalid_nqns(string? nqn) => Assert.NotNull(Subsystem.ValidateNqn(nqn));

    [Fact]
    public void Nqn_length_limit_is_223_bytes()
    {
        string prefix = "nqn.2024-01.com.example:";
        Assert.Null(Subsystem.ValidateNqn(prefix + new string('a', 223 - prefix.Length)));
        Assert.NotNull(Subsystem.ValidateNqn(prefix + new string('a', 224 - prefix.Length)));
        // Bytes, not characters: 'é' is two bytes in UTF-8.
        Assert.NotNull(Subsystem.ValidateNqn(prefix + new string('é', 100)));
    }

    [Fact]
    public void Subsystem_constructor_validates()
    {
        Assert.Throws<ArgumentException>(() => new Subsystem("bogus"));
        Assert.Throws<ArgumentException>(() => new Subsystem("nqn.2024-01.com.example:x", serial: new string('1', 21)));
        Assert.Throws<ArgumentException>(() => new Subsystem("nqn.2024-01.com.example:x", model: new string('m', 41)));
        Assert.Throws<ArgumentException>(() => new Subsystem("nqn.2024-01.com.example:x", firmwareRevision: "123456789"));
        var s = new Subsystem("nqn.2024-01.com.example:x");
        Assert.False(s.AllowAnyHost); // fail closed: no host unless listed or opened deliberately
        Assert.False(s.IsHostAllowed("nqn.2014-08.org.nvmexpress:uuid:14bda89c-1d6f-4471-b495-db452b9b96ed"));
        Assert.Equal(20, s.Serial.Length);
        Assert.Equal(s.Serial, new Subsystem("nqn.2024-01.com.example:x").Serial); // derived, stable
        Assert.NotEqual(s.Serial, new Subsystem("nqn.2024-01.com.example:y").Serial);
    }

    [Fact]
    public void Removing_a_host_or_closing_the_subsystem_destroys_the_controllers_no_longer_allowed()
    {
        using var t = new TestTarget(allowAnyHost: false);
        t.Subsystem.AllowHost(TestTarget.OtherHostNqn);
        var mine = t.ConnectAdmin();
        var other = t.ConnectAdmin(hostNqn: TestTarget.OtherHostNqn);
        Assert.Equal(1, t.Subsystem.DisallowHost(TestTarget.OtherHostNqn));
        Assert.True(other.Controller!.IsDestroyed);
        Assert.Contains(other.Transport.Terminations, r => r.Contains("removed from the allowed hosts"));
        Assert.False(mine.Controller!.IsDestroyed);
        Assert.Equal(1, t.Subsystem.DisallowHost(TestTarget.HostNqn)); // the last one: the subsystem is closed
        Assert.True(mine.Controller.IsDestroyed);
        Assert.False(t.Subsystem.IsHostAllowed(TestTarget.HostNqn));
        t.NewQueue().Expect(NvmeStatus.ConnectInvalidHost, Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId).Sqe,
            Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId).Data);

        // Opened to any host, everyone gets in; closed again, only the listed host keeps its controller.
        Assert.Equal(0, t.Subsystem.SetAllowAnyHost(true));
        t.Subsystem.AllowHost(TestTarget.HostNqn);
        var listed = t.ConnectAdmin();
        var unlisted = t.ConnectAdmin(hostNqn: TestTarget.OtherHostNqn);
        Assert.Equal(0, t.Subsystem.DisallowHost(TestTarget.HostNqn)); // it still admits any host: nobody is cut off
        Assert.False(listed.Controller!.IsDestroyed);
        t.Subsystem.AllowHost(TestTarget.HostNqn);
        Assert.Equal(1, t.Subsystem.SetAllowAnyHost(false));
        Assert.True(unlisted.Controller!.IsDestroyed);
        Assert.False(listed.Controller.IsDestroyed);
    }

    [Fact]
    public void Subsystem_namespace_bookkeeping()
    {
        var s = new Subsystem("nqn.2024-01.com.example:x");
        var ns = new Namespace(4, new MemoryBlockStore(4096), 512, NamespaceIds.Derive(s.Nqn, 4));
        s.AttachNamespace(ns);
        Assert.Throws<InvalidOperationException>(() => s.AttachNamespace(new Namespace(4, new MemoryBlockStore(4096), 512, ns.Ids)));
        Assert.Same(ns, s.GetNamespace(4));
        Assert.Null(s.GetNamespace(5));
        Assert.Same(ns, s.DetachNamespace(4));
        Assert.Null(s.DetachNamespace(4));
        Assert.Null(s.GetNamespace(4));
        var target = new NvmeTarget(keepAliveScanInterval: Timeout.InfiniteTimeSpan);
        Assert.Throws<InvalidOperationException>(() => target.Discovery.AttachNamespace(ns));
        target.AddSubsystem(s);
        Assert.Throws<InvalidOperationException>(() => target.AddSubsystem(new Subsystem(s.Nqn)));
        Assert.Same(s, target.FindSubsystem(s.Nqn));
        Assert.Same(target.Discovery, target.FindSubsystem(Nvme.Core.Spec.WellKnown.DiscoveryNqn));
        target.Dispose();
    }

    [Fact]
    public void Namespace_constructor_validates()
    {
        var ids = NamespaceIds.Derive("nqn.2024-01.com.example:x", 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Namespace(0, new MemoryBlockStore(4096), 512, ids));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Namespace(0xFFFFFFFF, new MemoryBlockStore(4096), 512, ids));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Namespace(1, new MemoryBlockStore(4096), 1024, ids));
        Assert.Throws<ArgumentException>(() => new Namespace(1, new MemoryBlockStore(2048), 4096, ids));
        var ns = new Namespace(1, new MemoryBlockStore(4096 * 3 + 100), 4096, ids);
        Assert.Equal(3ul, ns.BlockCount); // a partial trailing block is not exposed
        Assert.Equal(12, ns.BlockShift);
    }

    [Fact]
    public void NamespaceIds_are_stable_and_distinct()
    {
        const string nqn = "nqn.2024-01.com.example:x";
        var a = NamespaceIds.Derive(nqn, 1);
        var b = NamespaceIds.Derive(nqn, 1);
        Assert.Equal(a.Uuid, b.Uuid);
        Assert.Equal(a.Nguid, b.Nguid);
        Assert.Equal(a.Eui64, b.Eui64);

        var c = NamespaceIds.Derive(nqn, 2);
        Assert.NotEqual(a.Uuid, c.Uuid);
        Assert.NotEqual(a.Nguid, c.Nguid);
        Assert.NotEqual(a.Eui64, c.Eui64);
        var d = NamespaceIds.Derive("nqn.2024-01.com.example:y", 1);
        Assert.NotEqual(a.Nguid, d.Nguid);

        Assert.Equal(16, a.Nguid.Length);
        Assert.Equal(8, a.Eui64.Length);
        Assert.Equal(2, a.Eui64[0] & 3); // locally administered, unicast
        Assert.Equal(4, a.Uuid.Version);
        Assert.Equal(0x80, a.Uuid.ToByteArray(bigEndian: true)[8] & 0xC0); // RFC 4122 variant
        Assert.Contains(a.Nguid, x => x != 0);

        var fixedUuid = Guid.Parse("11111111-2222-4333-8444-555555555555");
        var e = NamespaceIds.Derive(nqn, 1, fixedUuid);
        Assert.Equal(fixedUuid, e.Uuid);
        // A configured UUID seeds every identifier: a different store re-added under NSID 1 (it gets a new
        // UUID) must not carry the NGUID/EUI-64 of the one removed.
        Assert.NotEqual(a.Nguid, e.Nguid);
        Assert.NotEqual(a.Eui64, e.Eui64);
        var f = NamespaceIds.Derive("nqn.2024-01.com.example:other", 7, fixedUuid);
        Assert.Equal(e.Nguid, f.Nguid);
        Assert.Equal(e.Eui64, f.Eui64);
    }

    // ------------------------------------------------------------------ MemoryBlockStore

    [Fact]
    public void Memory_store_is_sparse()
    {
        using var s = new MemoryBlockStore(1L << 30); // 1 GiB costs nothing until written
        Assert.Equal(0, s.AllocatedBytes);
        var buf = new byte[4096];
        s.Read(512L << 20, buf);
        Assert.All(buf, b => Assert.Equal(0, b));
        Assert.Equal(0, s.AllocatedBytes);

        s.Write(5L << 20, new byte[] { 1, 2, 3 });
        Assert.Equal(1L << 20, s.AllocatedBytes);
        // A write across a chunk boundary touches two chunks.
        var data = new byte[1024];
        new Random(1).NextBytes(data);
        s.Write((7L << 20) - 512, data);
        Assert.Equal(3L << 20, s.AllocatedBytes);
        var back = new byte[1024];
        s.Read((7L << 20) - 512, back);
        Assert.Equal(data, back);
        var small = new byte[4];
        s.Read(5L << 20, small);
        Assert.Equal(new byte[] { 1, 2, 3, 0 }, small);
    }

    [Fact]
    public async Task Memory_store_zero_and_deallocate()
    {
        using var s = new MemoryBlockStore(4L << 20);
        var data = new byte[4L << 20];
        new Random(2).NextBytes(data);
        await s.WriteAsync(0, data);
        Assert.Equal(4L << 20, s.AllocatedBytes);

        // Partial chunk: zeroed in place, still allocated.
        await s.ZeroAsync(100, 412, deallocate: true);
        Assert.Equal(4L << 20, s.AllocatedBytes);
        // Whole chunk with deallocate: released.
        await s.ZeroAsync(1L << 20, 1L << 20, deallocate: true);
        Assert.Equal(3L << 20, s.AllocatedBytes);
        // Whole chunk without deallocate: zeroed, kept.
        await s.ZeroAsync(2L << 20, 1L << 20, deallocate: false);
        Assert.Equal(3L << 20, s.AllocatedBytes);

        var back = new byte[4L << 20];
        await s.ReadAsync(0, back);
        var expected = (byte[])data.Clone();
        Array.Clear(expected, 100, 412);
        Array.Clear(expected, 1 << 20, 2 << 20);
        Assert.Equal(expected, back);
        await s.FlushAsync();
    }

    [Fact]
    public void Memory_store_with_odd_length()
    {
        using var s = new MemoryBlockStore((1L << 20) + 4096);
        Assert.Equal((1L << 20) + 4096, s.Length);
        s.Write((1L << 20) + 4000, new byte[96]);
        Assert.Equal(1L << 20, s.AllocatedBytes); // only the (short) last chunk
        var tail = new byte[4096];
        s.Read(1L << 20, tail);
        Assert.All(tail, b => Assert.Equal(0, b));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryBlockStore(0));
    }

    // ------------------------------------------------------------------ FileBlockStore

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("nvme-tests-").FullName;
        public string File(string name) => System.IO.Path.Combine(Path, name);
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    /// <summary>Bytes the file system allocated for a file (st_blocks * 512).</summary>
    private static long AllocatedOnDisk(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%b", path]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string s = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return long.Parse(s.Trim(), System.Globalization.CultureInfo.InvariantCulture) * 512;
    }

    /// <summary>Whether the temp file system keeps sparse files sparse (ext4, xfs, btrfs, tmpfs do).</summary>
    private static bool FileSystemIsSparse(TempDir dir)
    {
        string probe = dir.File("probe");
        using (var h = File.OpenHandle(probe, FileMode.CreateNew, FileAccess.ReadWrite)) RandomAccess.SetLength(h, 64L << 20);
        bool sparse = AllocatedOnDisk(probe) < 1 << 20;
        File.Delete(probe);
        return sparse;
    }

    [Fact]
    public async Task File_store_creates_a_sparse_file()
    {
        using var dir = new TempDir();
        string path = dir.File("ns1.img");
        using (var s = FileBlockStore.OpenFile(path, 256L << 20))
        {
            Assert.Equal(256L << 20, s.Length);
            Assert.Contains(path, s.Description);
            Assert.Equal(256L << 20, new FileInfo(path).Length);
            if (FileSystemIsSparse(dir)) Assert.True(AllocatedOnDisk(path) < 1 << 20, "the new file is sparse");
            var buf = new byte[4096];
            await s.ReadAsync(100L << 20, buf);
            Assert.All(buf, b => Assert.Equal(0, b));
            var data = new byte[8192];
            new Random(3).NextBytes(data);
            await s.WriteAsync(1L << 20, data);
            await s.FlushAsync();
        }
        // Reopen: same size and contents, with or without the size.
        using (var s = FileBlockStore.OpenFile(path))
        {
            Assert.Equal(256L << 20, s.Length);
            var back = new byte[8192];
            await s.ReadAsync(1L << 20, back);
            var data = new byte[8192];
            new Random(3).NextBytes(data);
            Assert.Equal(data, back);
        }
        using (var s = FileBlockStore.OpenFile(path, 128L << 20))
            Assert.Equal(128L << 20, s.Length); // a bigger file may back a smaller namespace
    }

    [Fact]
    public void File_store_errors()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<StoreException>(() => FileBlockStore.OpenFile(dir.File("missing.img")));
        Assert.Contains("does not exist", missing.Message);
        Assert.False(File.Exists(dir.File("missing.img")));

        var noDir = Assert.Throws<StoreException>(() => FileBlockStore.OpenFile(dir.File("nodir/x.img"), 1 << 20));
        Assert.Contains("directory", noDir.Message);

        string small = dir.File("small.img");
        File.WriteAllBytes(small, new byte[4096]);
        var tooSmall = Assert.Throws<StoreException>(() => FileBlockStore.OpenFile(small, 1 << 20));
        Assert.Contains("smaller", tooSmall.Message);

        string empty = dir.File("empty.img");
        File.WriteAllBytes(empty, []);
        Assert.Throws<StoreException>(() => FileBlockStore.OpenFile(empty));
    }

    [Fact]
    public async Task File_store_punch_hole_reads_zeros()
    {
        using var dir = new TempDir();
        string path = dir.File("punch.img");
        bool sparseFs = FileSystemIsSparse(dir);
        using var s = FileBlockStore.OpenFile(path, 16L << 20);
        var data = new byte[4L << 20];
        new Random(4).NextBytes(data);
        await s.WriteAsync(0, data);
        await s.FlushAsync();
        long before = AllocatedOnDisk(path);
        Assert.True(before >= 4L << 20);

        await s.ZeroAsync(1L << 20, 2L << 20, deallocate: true);
        await s.ZeroAsync(4096, 4096, deallocate: false);
        var back = new byte[4L << 20];
        await s.ReadAsync(0, back);
        var expected = (byte[])data.Clone();
        Array.Clear(expected, 1 << 20, 2 << 20);
        Array.Clear(expected, 4096, 4096);
        Assert.Equal(expected, back);
        Assert.Equal(16L << 20, new FileInfo(path).Length); // KEEP_SIZE
        if (sparseFs) Assert.True(AllocatedOnDisk(path) <= before - (1L << 20), "the hole was punched");
    }
    [Fact]
    public void File_store_creates_files_only_its_owner_can_read_and_reports_where_they_are()
    {
        using var dir = new TempDir();
        string path = dir.File("private.img");
        using (var s = FileBlockStore.OpenFile(path, 1 << 20))
        {
            Assert.True(s.Created);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(path, s.RealPath);
        }
        // Through a symbolic link (and a "..") the store says where the file really is.
        string link = dir.File("link.img");
        File.CreateSymbolicLink(link, path);
        Directory.CreateDirectory(dir.File("sub"));
        using (var s = FileBlockStore.OpenFile(dir.File("sub/../link.img")))
        {
            Assert.False(s.Created);
            Assert.Equal(path, s.RealPath);
            Assert.Equal(1 << 20, s.Length);
        }
        Assert.Equal(path, UnixFile.RealPath(dir.File("sub/../link.img"), out _));
        Assert.Null(UnixFile.RealPath(dir.File("nodir/x.img"), out int errno));
        Assert.Equal(UnixFile.ENOENT, errno);
        Assert.Equal(UnixFileKind.SymbolicLink, UnixFile.KindOf(link, followLinks: false, out _));
        Assert.Equal(UnixFileKind.Regular, UnixFile.KindOf(link, followLinks: true, out _));
        Assert.Equal(UnixFileKind.Directory, UnixFile.KindOf(dir.Path, followLinks: true, out _));
    }

    [Fact]
    public void File_store_verifies_what_it_opened()
    {
        using var dir = new TempDir();
        string file = dir.File("regular.img");
        File.WriteAllBytes(file, new byte[1 << 20]);
        var notBlock = Assert.Throws<StoreException>(() => FileBlockStore.OpenBlockDevice(file));
        Assert.Contains("is a regular file, not a block device", notBlock.Message);
        var directory = Assert.Throws<StoreException>(() => FileBlockStore.OpenFile(dir.Path));
        Assert.Contains("Is a directory", directory.Message);
        // /dev/null is a character device: neither a file namespace nor a block namespace.
        Assert.Contains("is a character device, not a regular file", Assert.Throws<StoreException>(() => FileBlockStore.OpenFile("/dev/null")).Message);
        Assert.Contains("is a character device, not a block device", Assert.Throws<StoreException>(() => FileBlockStore.OpenBlockDevice("/dev/null")).Message);
        var missing = Assert.Throws<StoreException>(() => FileBlockStore.OpenBlockDevice(dir.File("sdz")));
        Assert.Contains("does not exist", missing.Message);
    }

    [Fact]
    public async Task File_store_read_past_the_end_of_a_truncated_file_is_a_media_error_not_zeros()
    {
        using var dir = new TempDir();
        string path = dir.File("shrinks.img");
        using var s = FileBlockStore.OpenFile(path, 1 << 20);
        await s.WriteAsync(0, new byte[8192]);
        using (var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite)) RandomAccess.SetLength(h, 4096); // someone else truncates it

        var ok = new byte[4096];
        await s.ReadAsync(0, ok); // still inside the file
        var e = await Assert.ThrowsAsync<StoreIoException>(async () => await s.ReadAsync(4096, new byte[4096]));
        Assert.Equal(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr, e.Status);
        Assert.Contains("truncated", e.Message);
        // A read that starts inside and runs past the end fails too (no half-zeroed buffer with success).
        await Assert.ThrowsAsync<StoreIoException>(async () => await s.ReadAsync(0, new byte[8192]));
    }

    [Fact]
    public void Store_errors_map_errno_as_the_kernel_target_does()
    {
        // What .NET throws for a full file system on Linux: IOException with the raw errno as HResult.
        var enospc = StoreIoException.From(new IOException("No space left on device : '/x'", 28), "write", "file /x");
        Assert.Equal(NvmeStatus.CapacityExceeded, enospc.Status);
        Assert.Equal(0x4000, (ushort)enospc.Status & 0x4000); // DNR
        Assert.Equal(UnixFile.ENOSPC, enospc.Errno);
        Assert.Equal(NvmeStatus.CapacityExceeded, StoreIoException.StatusFor(UnixFile.EDQUOT));
        Assert.Equal(NvmeStatus.InternalError, StoreIoException.From(new IOException("Input/output error", 5), "read", "file /x").Status);
        Assert.Equal(NvmeStatus.InternalError, StoreIoException.From(new IOException("no errno"), "read", "file /x").Status);
        Assert.Equal(NvmeStatus.InternalError, StoreIoException.From(new IOException("win32", unchecked((int)0x80070070)), "read", "file /x").Status);
    }

    [Fact]
    public void File_store_preallocates_at_creation_and_on_grow()
    {
        using var dir = new TempDir();
        string path = dir.File("full.img");
        using var s = FileBlockStore.OpenFile(path, 8L << 20, preallocate: true);
        Assert.True(s.Preallocated);
        Assert.True(AllocatedOnDisk(path) >= 8L << 20, "every block is allocated");
        s.Resize(12L << 20);
        Assert.Equal(12L << 20, new FileInfo(path).Length);
        Assert.True(AllocatedOnDisk(path) >= 12L << 20, "the grown range is allocated too");
    }
}
