using System.Globalization;

namespace Ferry.Tests.Shared;

/// <summary>
/// Temp files and directories of tests: <c>ferry-&lt;kind&gt;-p&lt;pid&gt;-&lt;12 hex&gt;</c> in the temp directory, naming
/// the test process, so `./ferry test` removes what a killed run left (the processes naming it, then the path) before it
/// runs, and never a live run's. Servers with an owner file of their own (PostgreSQL, RabbitMQ, the CLI's `ferry
/// distributed`, QEMU's short directories) are swept by their own rules.
/// </summary>
public static class TestTempNames
{
    /// <summary>
    /// A new path for <paramref name="kind"/> (lower-case letters and dashes), ending with <paramref name="suffix"/>, owned by
    /// this process or by <paramref name="owner"/> (the sweep's test: a process that is gone); nothing is made.
    /// </summary>
    public static string Path(string kind, string suffix = "", int? owner = null) =>
        System.IO.Path.Combine(System.IO.Path.GetTempPath(),
            string.Create(CultureInfo.InvariantCulture, $"ferry-{kind}-p{owner ?? Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..12]}{suffix}"));

    /// <summary>A new empty directory for <paramref name="kind"/>; its full path.</summary>
    public static string Directory(string kind) => System.IO.Directory.CreateDirectory(Path(kind)).FullName;
}
