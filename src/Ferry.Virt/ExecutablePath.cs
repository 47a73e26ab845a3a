namespace Ferry.Virt;

/// <summary>
/// Where a host tool (qemu-storage-daemon, qemu-img…) would be run from, found as <c>execvp(3)</c> finds it: a name with a
/// slash is a path of its own, any other name is looked up in each directory of <c>PATH</c> in turn
/// (https://pubs.opengroup.org/onlinepubs/9799919799/functions/exec.html).
/// </summary>
public static class ExecutablePath
{
    private const UnixFileMode AnyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>The full path <paramref name="program"/> runs from, or null when no executable file of that name is found.</summary>
    /// <param name="searchPath">The directories to search, colon-separated; null: this process's <c>PATH</c>. Empty entries are skipped.</param>
    public static string? Find(string program, string? searchPath = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(program);
        if (program.Contains('/', StringComparison.Ordinal))
        {
            return IsExecutableFile(program) ? Path.GetFullPath(program) : null;
        }
        return (searchPath ?? Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, program))
            .FirstOrDefault(IsExecutableFile);
    }

    /// <summary>True when <see cref="Find"/> finds <paramref name="program"/>.</summary>
    public static bool Exists(string program, string? searchPath = null) => Find(program, searchPath) is not null;

    // A file (a symlink followed) with an execute bit: what exec would run rather than refuse with EACCES.
    private static bool IsExecutableFile(string path)
    {
        try
        {
            return File.Exists(path) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & AnyExecute) != 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false; // removed meanwhile, or not ours to look at
        }
    }
}
