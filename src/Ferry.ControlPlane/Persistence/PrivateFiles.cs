namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Files of the data directory (database, identity file, openrc files, image data) hold secrets or other
/// projects' data: they are created readable and writable by their owner only (0600), never world-readable
/// for a moment, and an existing file is narrowed to that mode.
/// </summary>
public static class PrivateFiles
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Opens <paramref name="path"/> for writing, created (or truncated) with mode 0600.</summary>
    public static FileStream Create(string path, bool useAsync = false)
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 1 << 16,
            Options = useAsync ? FileOptions.Asynchronous : FileOptions.None,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnly;
        }
        var stream = new FileStream(path, options);
        Restrict(path);
        return stream;
    }

    /// <summary>Writes <paramref name="text"/> to a file created with mode 0600.</summary>
    public static void WriteAllText(string path, string text)
    {
        using var stream = Create(path);
        using var writer = new StreamWriter(stream);
        writer.Write(text);
    }

    /// <summary>Narrows an existing file to mode 0600 (a file created before this rule, or by a library such as SQLite).</summary>
    public static void Restrict(string path)
    {
        if (!OperatingSystem.IsWindows() && File.Exists(path) && File.GetUnixFileMode(path) != OwnerOnly)
        {
            File.SetUnixFileMode(path, OwnerOnly);
        }
    }
}
