using System.Collections;
using Nvme.Core.Storage;
using Target.Configuration;

namespace Target.Storage;

/// <summary>Which rule of the storage policy refused a namespace.</summary>
public enum StorageRule
{
    /// <summary>A file namespace whose real path is not inside a storage directory.</summary>
    OutsideStorageDirectories,
    /// <summary>A file namespace that is not a regular file (a device, a directory, a FIFO, ...).</summary>
    NotARegularFile,
    /// <summary>A block namespace whose device is not in the block-device allow-list.</summary>
    BlockDeviceNotAllowed,
    /// <summary>A block namespace that is not a block device (e.g. a regular file).</summary>
    NotABlockDevice,
}

/// <summary>A namespace the storage policy does not allow; the message says which rule and how to allow it.
/// The management API answers it with 403, the start-up check with exit code 2.</summary>
public sealed class StoragePolicyException(StorageRule rule, string message) : StoreException(message)
{
    public StorageRule Rule { get; } = rule;
}

/// <summary>
/// Where namespaces may keep their data, checked before a store is opened and again on what was opened.
/// <list type="bullet">
/// <item>A file namespace's real path (realpath(3): symbolic links, intermediate ones included, and ".." resolved by
/// the kernel; for a new file, the real path of its directory) must lie in a storage directory (also resolved). It
/// must be a regular file. After the open, the descriptor's own path (/proc/self/fd) is checked again, so a link
/// or directory swapped in between cannot lead outside; a file created there is deleted again.</item>
/// <item>A block namespace must resolve to a device named in the block-device allow-list (compared by real path,
/// so /dev/disk/by-id links work) and be a block device (statx, S_ISBLK).</item>
/// <item>Relative namespace paths are relative to the first storage directory.</item>
/// </list>
/// Defaults: as root /var/lib/nvme-tcp-target; otherwise the configuration file's directory, or without one
/// $XDG_STATE_HOME/nvme-tcp-target (~/.local/state/nvme-tcp-target), created (0700) when a file is put there.
/// No block devices.
/// </summary>
public sealed class StoragePolicy
{
    public const string RootDefaultDirectory = "/var/lib/nvme-tcp-target";

    /// <param name="directories">Storage directories (absolute, or relative to the working directory).</param>
    /// <param name="blockDevices">Allowed block devices.</param>
    /// <param name="isDefault">The directory list is the built-in default (created when a file goes there).</param>
    public StoragePolicy(IEnumerable<string> directories, IEnumerable<string>? blockDevices = null, bool isDefault = false)
    {
        Directories = [.. directories.Select(Absolute).Distinct(StringComparer.Ordinal)];
        if (Directories.Count == 0) throw new ArgumentException("a storage policy needs at least one directory", nameof(directories));
        BlockDevices = [.. (blockDevices ?? []).Select(Absolute).Distinct(StringComparer.Ordinal)];
        IsDefault = isDefault;
    }

    /// <summary>The storage directories as configured (absolute); relative namespace paths go into the first.</summary>
    public IReadOnlyList<string> Directories { get; }
    /// <summary>The block-device allow-list as configured (absolute).</summary>
    public IReadOnlyList<string> BlockDevices { get; }
    /// <summary>The directories are the built-in default, not configured.</summary>
    public bool IsDefault { get; }

    /// <summary>
    /// The policy of a configuration: its <c>storage</c> section (relative entries are relative to the configuration
    /// file's directory), or the defaults. Command-line and environment settings are already in
    /// <paramref name="storage"/> (see <see cref="CommandLine"/>).
    /// </summary>
    public static StoragePolicy Create(StorageConfig? storage, string? configPath, IDictionary? environment = null, bool? root = null)
    {
        string baseDir = configPath != null ? Path.GetDirectoryName(Path.GetFullPath(configPath))! : Environment.CurrentDirectory;
        string Abs(string p) => Path.IsPathRooted(p) ? p : Path.Join(baseDir, p);
        var devices = storage?.BlockDevices?.Where(d => d.Length > 0).Select(Abs).ToList() ?? [];
        var dirs = storage?.Directories?.Where(d => d.Length > 0).Select(Abs).ToList();
        return dirs is { Count: > 0 }
            ? new StoragePolicy(dirs, devices)
            : new StoragePolicy([DefaultDirectory(configPath, environment, root)], devices, isDefault: true);
    }

    /// <summary>The default storage directory: /var/lib/nvme-tcp-target for root; otherwise the configuration
    /// file's directory, or $XDG_STATE_HOME/nvme-tcp-target (default ~/.local/state/nvme-tcp-target).</summary>
    public static string DefaultDirectory(string? configPath, IDictionary? environment = null, bool? root = null)
    {
        if (root ?? Environment.IsPrivilegedProcess) return RootDefaultDirectory;
        if (configPath != null) return Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        environment ??= Environment.GetEnvironmentVariables();
        // XDG base directory spec: a relative value is invalid and ignored.
        string state = environment["XDG_STATE_HOME"] is string x && Path.IsPathRooted(x) ? x
            : Path.Join(environment["HOME"] is string h && h.Length > 0 ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state");
        return Path.Join(state, "nvme-tcp-target");
    }

    /// <summary>Where a namespace path points before links are resolved: as given when absolute, else under
    /// the first storage directory. Not normalised: ".." is left to the kernel.</summary>
    public string PathFor(string path) => Path.IsPathRooted(path) ? path : Path.Join(Directories[0], path);

    // ------------------------------------------------------------------ checks without opening

    /// <summary>
    /// Checks a file namespace path and returns its real path (for a missing file: its directory's real path and
    /// its name) and whether it exists. <paramref name="mayCreate"/>: a size was given, so a missing file is
    /// created. Throws <see cref="StoragePolicyException"/> for a rule, <see cref="StoreException"/> for anything
    /// else (missing directory, missing file without a size).
    /// </summary>
    public (string RealPath, bool Exists) CheckFile(string path, bool mayCreate)
    {
        if (string.IsNullOrEmpty(path)) throw new StoreException("a file namespace needs a path");
        string full = PathFor(path);
        if (mayCreate && IsDefault && Path.GetDirectoryName(full) == Directories[0] && !Directory.Exists(Directories[0]))
            Directory.CreateDirectory(Directories[0], UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        string? real = UnixFile.RealPath(full, out int errno);
        bool exists = real != null;
        string? missingDirectory = null;
        if (real is null)
        {
            if (errno != UnixFile.ENOENT) throw new StoreException($"cannot resolve backing file '{path}': {UnixFile.ErrorText(errno)}");
            if (UnixFile.KindOf(full, followLinks: false, out _) == UnixFileKind.SymbolicLink)
                throw new StoreException($"backing file '{path}' is a symbolic link to '{new FileInfo(full).LinkTarget}', which does not exist; point it at a file or remove it");
            string name = Path.GetFileName(full);
            if (name is "" or "." or "..") throw new StoreException($"backing file '{path}' does not name a file");
            string dir = Path.GetDirectoryName(full) ?? "/";
            string realDir = WouldBeRealPath(dir, out bool dirExists)
                ?? throw new StoreException($"backing file '{path}': its directory '{dir}' does not exist (and has '..' below a missing directory); create it or give a plain path");
            if (!dirExists) missingDirectory = dir;
            real = Path.Join(realDir, name);
        }

        if (!InDirectories(real))
            throw new StoragePolicyException(StorageRule.OutsideStorageDirectories,
                $"file namespace '{path}' {(real != full ? $"resolves to '{real}', which is" : "is")} outside the storage directories ({string.Join(", ", Directories)}); " +
                "allow its directory with --storage-dir DIR or storage.directories" +
                (missingDirectory != null ? $" (and create it: directory '{missingDirectory}' does not exist)" : ""));
        if (exists && UnixFile.KindOf(real, followLinks: true, out _) is var kind && kind != UnixFileKind.Regular)
            throw new StoragePolicyException(StorageRule.NotARegularFile,
                $"file namespace '{path}' is {UnixFile.Describe(kind)}, not a regular file" + (kind == UnixFileKind.BlockDevice
                    ? "; a device is a block namespace (block:DEVICE), allowed with --allow-block-device DEVICE or storage.blockDevices"
                    : ""));
        if (missingDirectory != null)
            throw new StoreException($"directory '{missingDirectory}' for backing file '{path}' does not exist; create it first (mkdir -p {missingDirectory})");
        if (!exists && !mayCreate) throw new StoreException($"backing file '{path}' does not exist (give a size to create it)");
        return (real, exists);
    }

    /// <summary>Checks a block namespace's device and returns its real path. Throws <see cref="StoragePolicyException"/>
    /// when it is not in the allow-list or not a block device, <see cref="StoreException"/> when it does not exist.</summary>
    public string CheckBlockDevice(string path)
    {
        if (string.IsNullOrEmpty(path)) throw new StoreException("a block namespace needs a device path");
        string full = PathFor(path);
        string real = UnixFile.RealPath(full, out int errno)
            ?? throw new StoreException(errno == UnixFile.ENOENT ? $"block device '{path}' does not exist" : $"cannot resolve block device '{path}': {UnixFile.ErrorText(errno)}");
        if (!AllowedDevices().Contains(real))
            throw new StoragePolicyException(StorageRule.BlockDeviceNotAllowed,
                $"block device '{path}'{(real != full ? $" ({real})" : "")} is not in the allowed block devices " +
                $"({(BlockDevices.Count == 0 ? "none are allowed" : string.Join(", ", BlockDevices))}); allow it with --allow-block-device {path} or storage.blockDevices");
        var kind = UnixFile.KindOf(real, followLinks: true, out _);
        if (kind != UnixFileKind.BlockDevice)
            throw new StoragePolicyException(StorageRule.NotABlockDevice,
                $"block namespace '{path}' is {UnixFile.Describe(kind)}, not a block device; a block namespace needs a block device " +
                "(a file belongs in a file namespace, inside a storage directory)");
        return real;
    }

    /// <summary>Every file and block namespace of <paramref name="config"/> checked (nothing is opened): one message
    /// per refusal, for the start-up check. Shape errors (no path, unknown backend) are ConfigValidator's.</summary>
    public List<string> Validate(TargetConfig config)
    {
        var errors = new List<string>();
        foreach (var s in config.Subsystems)
            foreach (var ns in s.Namespaces)
            {
                if (string.IsNullOrEmpty(ns.Path)) continue;
                try
                {
                    if (ns.Backend == "file") CheckFile(ns.Path, mayCreate: ns.Size != null);
                    else if (ns.Backend == "block") CheckBlockDevice(ns.Path);
                }
                catch (StoreException e)
                {
                    errors.Add($"subsystem {(string.IsNullOrEmpty(s.Nqn) ? "(unnamed)" : s.Nqn)} namespace {ns.Nsid}: {e.Message}");
                }
            }
        return errors;
    }

    // ------------------------------------------------------------------ opening

    /// <summary>Checks, opens (or creates, mode 0600) a file namespace's file, and checks the opened descriptor's
    /// real path again: what counts is what was opened.</summary>
    public FileBlockStore OpenFile(string path, long? size, bool preallocate = false)
    {
        var (real, _) = CheckFile(path, mayCreate: size != null);
        var store = FileBlockStore.OpenFile(real, size, preallocate);
        if (!InDirectories(store.RealPath))
        {
            store.DisposeAndDeleteIfCreated();
            throw new StoragePolicyException(StorageRule.OutsideStorageDirectories,
                $"file namespace '{path}' was opened at '{store.RealPath}', outside the storage directories ({string.Join(", ", Directories)}): " +
                "a directory or link on its path changed while it was opened; refused");
        }
        return store;
    }

    /// <summary>Checks and opens a block namespace's device, then checks the opened descriptor again.</summary>
    public FileBlockStore OpenBlockDevice(string path)
    {
        var real = CheckBlockDevice(path);
        var store = FileBlockStore.OpenBlockDevice(real);
        if (!AllowedDevices().Contains(store.RealPath))
        {
            store.Dispose();
            throw new StoragePolicyException(StorageRule.BlockDeviceNotAllowed,
                $"block device '{path}' was opened at '{store.RealPath}', which is not in the allowed block devices: a link on its path changed while it was opened; refused");
        }
        return store;
    }

    // ------------------------------------------------------------------ helpers

    private bool InDirectories(string realPath)
    {
        foreach (var d in Directories)
        {
            var dir = WouldBeRealPath(d, out _);
            if (dir is null) continue;
            if (realPath == dir || realPath.StartsWith(dir.EndsWith('/') ? dir : dir + "/", StringComparison.Ordinal)) return true;
        }
        return false;
    }

    private HashSet<string> AllowedDevices()
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in BlockDevices)
            if (UnixFile.RealPath(d, out _) is string real) set.Add(real);
        return set;
    }

    /// <summary>The real path <paramref name="path"/> has or would have once created: the real path of its deepest
    /// existing ancestor plus the missing rest (which, not existing, holds no links). Null when a "." or ".." follows
    /// a missing component (the kernel could not resolve it either) or when an ancestor cannot be resolved.</summary>
    internal static string? WouldBeRealPath(string path, out bool exists)
    {
        exists = false;
        string current = Path.IsPathRooted(path) ? path : Path.GetFullPath(path);
        var missing = new Stack<string>();
        while (true)
        {
            if (UnixFile.RealPath(current, out int errno) is string real)
            {
                exists = missing.Count == 0;
                foreach (var part in missing)
                {
                    if (part is "." or "..") return null;
                    real = Path.Join(real, part);
                }
                return real;
            }
            if (errno != UnixFile.ENOENT) return null;
            string trimmed = current.TrimEnd('/');
            string? parent = Path.GetDirectoryName(trimmed);
            if (parent is null) return null;
            missing.Push(Path.GetFileName(trimmed));
            current = parent;
        }
    }

    /// <summary>Absolute, without "." components and repeated or trailing slashes. ".." stays: only the kernel knows
    /// what it means after a symbolic link.</summary>
    private static string Absolute(string path)
    {
        var full = Path.IsPathRooted(path) ? path : Path.Join(Environment.CurrentDirectory, path);
        return "/" + string.Join('/', full.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(part => part != "."));
    }
}
