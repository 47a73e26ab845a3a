using System.Diagnostics;
using System.Globalization;

namespace Ferry.Host.Distributed;

/// <summary>Signals to other processes: .NET itself only sends SIGKILL (Process.Kill), and a clean stop wants SIGTERM.</summary>
internal static class ProcessSignals
{
    /// <summary>Sends <paramref name="signal"/> (TERM, KILL…) to <paramref name="pid"/> with kill(1); returns its exit code (0: sent).</summary>
    public static int Send(int pid, string signal)
    {
        using var process = Process.Start(new ProcessStartInfo("kill")
        {
            ArgumentList = { "-s", signal, pid.ToString(CultureInfo.InvariantCulture) },
            RedirectStandardError = true,
        })!;
        process.WaitForExit();
        return process.ExitCode;
    }
}
