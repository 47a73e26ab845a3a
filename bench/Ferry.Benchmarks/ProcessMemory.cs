using System.Globalization;

namespace Ferry.Benchmarks;

/// <summary>Resident memory of other processes, from /proc: VmRSS (what ps shows) and PSS (shared pages split between their users).</summary>
internal static class ProcessMemory
{
    /// <summary>A <c>/proc/&lt;pid&gt;/status</c> field in MB (VmRSS, VmHWM…); 0 once the process is gone.</summary>
    public static double StatusMb(int pid, string field) => ReadKb($"/proc/{pid}/status", field) / 1024.0;

    /// <summary>A <c>/proc/&lt;pid&gt;/status</c> field that is a count (Threads); 0 once the process is gone.</summary>
    public static long StatusCount(int pid, string field) => ReadKb($"/proc/{pid}/status", field);

    /// <summary>
    /// Proportional set size in MB: each page shared with N processes counts 1/N. Summed over processes it is what they
    /// take together, where the sum of VmRSS counts a shared page (the .NET runtime's mapped files) once per process.
    /// </summary>
    public static double PssMb(int pid) => ReadKb($"/proc/{pid}/smaps_rollup", "Pss") / 1024.0;

    /// <summary>CPU time the process has used (user + system, <c>/proc/&lt;pid&gt;/stat</c>); zero once it is gone.</summary>
    public static TimeSpan CpuTime(int pid)
    {
        try
        {
            // "pid (comm) state ppid …": utime and stime are the 14th and 15th fields, the 12th and 13th after the comm.
            var fields = File.ReadAllText($"/proc/{pid}/stat").AsSpan();
            var rest = fields[(fields.LastIndexOf(')') + 2)..].ToString().Split(' ');
            var ticks = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / (double)ClockTicksPerSecond);
        }
        catch (IOException)
        {
            return TimeSpan.Zero;
        }
    }

    // USER_HZ: 100 on every Linux of the last two decades (sysconf(_SC_CLK_TCK)); /proc/PID/stat counts in it.
    private const int ClockTicksPerSecond = 100;

    /// <summary>The pid on the first line of a pid file (PostgreSQL's postmaster.pid, RabbitMQ's pid), or null.</summary>
    public static int? PidInFile(string file)
    {
        try
        {
            return int.TryParse(File.ReadLines(file).FirstOrDefault()?.Trim(), CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary><paramref name="root"/> and every process below it (by parent pid); empty when it is null or gone.</summary>
    public static IReadOnlyList<int> Tree(int? root)
    {
        if (root is not { } top || !Directory.Exists($"/proc/{top}"))
        {
            return [];
        }
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid) && ParentOf(pid) is { } parent)
            {
                parents[pid] = parent;
            }
        }
        var tree = new List<int> { top };
        for (var i = 0; i < tree.Count; i++)
        {
            tree.AddRange(parents.Where(p => p.Value == tree[i]).Select(p => p.Key));
        }
        return tree;
    }

    private static int? ParentOf(int pid)
    {
        try
        {
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// The file offsets of the pages of the process's executable that are resident in it (<c>/proc/PID/pagemap</c>'s
    /// present bit, root only; empty otherwise): with the executable's symbols they show which code and data each role touches.
    /// </summary>
    public static IReadOnlyList<long> ResidentExecutablePages(int pid)
    {
        var offsets = new List<long>();
        try
        {
            var executable = File.ResolveLinkTarget($"/proc/{pid}/exe", returnFinalTarget: true)?.FullName;
            using var pagemap = File.OpenHandle($"/proc/{pid}/pagemap");
            var entry = new byte[8];
            foreach (var line in File.ReadLines($"/proc/{pid}/maps"))
            {
                // "start-end perms offset dev inode path"
                var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 6 || fields[5] != executable)
                {
                    continue;
                }
                var range = fields[0].Split('-');
                var start = long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var end = long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var fileOffset = long.Parse(fields[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                for (var page = start; page < end; page += PageSize)
                {
                    RandomAccess.Read(pagemap, entry, page / PageSize * 8);
                    if ((BitConverter.ToUInt64(entry) & (1UL << 63)) != 0)
                    {
                        offsets.Add(fileOffset + page - start);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The process ended or this is not root: nothing to read.
        }
        return offsets;
    }

    private const int PageSize = 4096;

    private static long ReadKb(string file, string field)
    {
        try
        {
            foreach (var line in File.ReadLines(file))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
            // The process ended: it holds nothing.
        }
        return 0;
    }
}
