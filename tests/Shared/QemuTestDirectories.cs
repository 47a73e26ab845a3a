using System.Diagnostics;
using System.Globalization;

namespace Ferry.Tests.Shared;

/// <summary>
/// The directories of tests that start QEMU guests or a <c>qemu-storage-daemon</c>: short (<c>/tmp/&lt;prefix&gt;-&lt;8 hex&gt;</c>,
/// since QMP socket paths must fit 107 bytes), each with an <c>owner.pid</c> naming the test process. Both outlive a test
/// process that is killed (the daemon runs in a session of its own, as in production), so the first directory a test process
/// asks for first removes what killed runs left: in each such directory whose owner is gone, every process that names it
/// (the storage daemon, QEMU guests, a `ferry` child) is killed, then the directory is deleted. A directory of a live run,
/// one without an owner file (being made, or made by an older build) and anything outside these prefixes (a deployment's
/// data directory) are left alone.
/// </summary>
public static class QemuTestDirectories
{
    public const string OwnerFile = "owner.pid";

    /// <summary>
    /// fq: Ferry.Tests' QEMU and storage daemon tests; fqf: the QEMU Ferry fixtures; fgl: `ferry all-in-one --driver qemu`
    /// children; fdv: `ferry distributed` with the NBD volume backend.
    /// </summary>
    private static readonly string[] s_prefixes = ["fq", "fqf", "fgl", "fdv"];

    private const string Root = "/tmp";

    private static readonly Lazy<int> s_swept = new(() => RemoveKilledRuns(Root), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes <c>/tmp/&lt;prefix&gt;-&lt;8 hex&gt;</c>, owned by this process (the first call of the process sweeps killed runs first).</summary>
    public static string Create(string prefix)
    {
        if (!s_prefixes.Contains(prefix))
        {
            throw new ArgumentException($"'{prefix}' is none of {string.Join(", ", s_prefixes)}: a directory the sweep does not know would outlive a killed run.", nameof(prefix));
        }
        _ = s_swept.Value;
        var directory = Path.Combine(Root, $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        return directory;
    }

    /// <summary>
    /// Ends the processes of every directory under <paramref name="root"/> that killed runs left (see the type) and deletes
    /// the directories; returns how many were removed.
    /// </summary>
    public static int RemoveKilledRuns(string root)
    {
        var removed = 0;
        foreach (var directory in Directory.EnumerateDirectories(Path.TrimEndingDirectorySeparator(Path.GetFullPath(root))).Where(IsOurs).ToList())
        {
            if (ReadPid(Path.Combine(directory, OwnerFile)) is not { } owner || Directory.Exists($"/proc/{owner}"))
            {
                continue;
            }
            KillProcessesNaming(directory);
            for (var attempt = 0; attempt < 20 && Directory.Exists(directory); attempt++)
            {
                try
                {
                    Directory.Delete(directory, recursive: true);
                    removed++;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Thread.Sleep(100); // a process that was just killed may still write
                }
            }
        }
        return removed;
    }

    private static bool IsOurs(string directory)
    {
        var name = Path.GetFileName(directory);
        var dash = name.LastIndexOf('-');
        return dash > 0 && s_prefixes.Contains(name[..dash]) && name.Length - dash - 1 == 8 && name[(dash + 1)..].All(char.IsAsciiHexDigitLower);
    }

    /// <summary>Kills each process with an argument in <paramref name="directory"/> or that role of it (<c>FERRY_DATADIR</c>), and waits until it is gone.</summary>
    private static void KillProcessesNaming(string directory)
    {
        var killed = new List<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                var names = File.ReadAllText(Path.Combine(proc, "cmdline")).Split('\0')
                    .Any(arg => arg == directory || arg.Contains(directory + "/", StringComparison.Ordinal))
                    || File.ReadAllText(Path.Combine(proc, "environ")).Split('\0').Contains($"FERRY_DATADIR={directory}");
                if (names)
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                    killed.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // ended meanwhile, or not ours to read
            }
        }
        var deadline = Stopwatch.StartNew();
        while (killed.Any(IsRunning) && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(20);
        }
    }

    /// <summary>Alive and not a zombie (a process this one started stays a zombie until reaped).</summary>
    private static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] is not ('Z' or 'X');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static int? ReadPid(string file)
    {
        try
        {
            return int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
