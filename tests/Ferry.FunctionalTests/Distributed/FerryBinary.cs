namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// The <c>ferry</c> executable the process-spawning tests run: <c>FERRY_BINARY</c> when set (the native ferry that
/// <c>./ferry test</c> publishes, so CI proves what <c>./ferry up --distributed</c> runs), else the JIT build's apphost
/// beside the tests. A <c>FERRY_BINARY</c> naming no file is an error, not a quiet fallback to the JIT build.
/// </summary>
public static class FerryBinary
{
    public const string Variable = "FERRY_BINARY";

    /// <summary>The executable named by <c>FERRY_BINARY</c>, or null when it is not set.</summary>
    public static string? Given
    {
        get
        {
            var given = Environment.GetEnvironmentVariable(Variable);
            if (string.IsNullOrEmpty(given))
            {
                return null;
            }
            var path = Path.GetFullPath(given);
            return File.Exists(path) ? path : throw new InvalidOperationException($"{Variable}={given}: no such file (publish it with ./ferry test, or unset {Variable})");
        }
    }

    /// <summary>What to run: <see cref="Given"/>, or the apphost of the JIT build (it runs ferry.dll beside it).</summary>
    public static string Executable => Given ?? Path.Combine(AppContext.BaseDirectory, "ferry");
}
