using System.Diagnostics;

namespace Ferry.Tests.Shared;

/// <summary>The last step of a clean-up: processes a test started that are still there are killed, then the test fails naming them.</summary>
internal static class Survivors
{
    public static void KillAndFail(IReadOnlyCollection<int> pids, string what)
    {
        foreach (var pid in pids)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
            }
            catch (ArgumentException)
            {
                // Ended by itself in between.
            }
        }
        Assert.True(pids.Count == 0, $"{what} pids {string.Join(", ", pids)} survived the clean-up");
    }
}
