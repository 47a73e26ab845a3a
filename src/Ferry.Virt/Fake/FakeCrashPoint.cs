using System.Diagnostics;

namespace Ferry.Virt.Fake;

/// <summary>
/// A kill -9 of the whole process at a chosen step of the fake driver, for tests that restart a Ferry after a
/// crash at every moment of a move (the fault sweep's child process). Read once from the environment:
/// <list type="bullet">
/// <item><c>FERRY_FAKE_CRASH_AT=&lt;step&gt;</c> kills the process when any host reaches the step (a name of
/// <see cref="FakeSteps"/>), <c>&lt;step&gt;:after</c> once the step's driver work is done;</item>
/// <item><c>FERRY_FAKE_FAIL_AT=&lt;step&gt;</c> makes the step fail once (to reach a rollback and crash in it);</item>
/// <item><c>FERRY_FAKE_CRASH_ARMED=&lt;path&gt;</c>, when set, makes both wait until that file exists, so the
/// set-up of a trial (a boot, a first resize) runs the same steps unharmed.</item>
/// </list>
/// <c>FERRY_FAKE_HOLD=&lt;path&gt;</c> holds a step instead: while that file exists and names the step, a process reaching
/// the step writes <c>&lt;path&gt;.reached</c> and waits until the file is gone (a test does something to the rest of the
/// system meanwhile, then lets the move go on).
/// With <c>FERRY_FAKE_CRASH_AT</c> set but empty, the armed file's content names the point: processes started once
/// (the distributed shape's compute agents) can be given a new point per test.
/// Unset, nothing changes. Command-line flags would be the wrong place: no operator ever wants this.
/// </summary>
internal static class FakeCrashPoint
{
    public const string CrashAtVariable = "FERRY_FAKE_CRASH_AT";
    public const string FailAtVariable = "FERRY_FAKE_FAIL_AT";
    public const string ArmedFileVariable = "FERRY_FAKE_CRASH_ARMED";
    public const string HoldFileVariable = "FERRY_FAKE_HOLD";
    public const string AfterSuffix = ":after";
    private static readonly string? s_holdFile = Environment.GetEnvironmentVariable(HoldFileVariable);

    private static readonly string? s_crashAt = Environment.GetEnvironmentVariable(CrashAtVariable);
    private static readonly string? s_failAt = Environment.GetEnvironmentVariable(FailAtVariable);
    private static readonly string? s_armedFile = Environment.GetEnvironmentVariable(ArmedFileVariable);
    private static int s_failed;

    private static string? ArmedPoint() => string.IsNullOrEmpty(s_armedFile) ? null : ReadPoint(s_armedFile);

    private static string? ReadPoint(string file)
    {
        try
        {
            return File.ReadAllText(file).Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool Armed => string.IsNullOrEmpty(s_armedFile) || File.Exists(s_armedFile);

    /// <summary>Waits while the hold file names <paramref name="step"/> (see the class remarks).</summary>
    public static async ValueTask HoldAsync(string step, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(s_holdFile) || ReadPoint(s_holdFile) != step)
        {
            return;
        }
        File.WriteAllText(s_holdFile + ".reached", step);
        while (ReadPoint(s_holdFile) == step)
        {
            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>Kills the process when it is to crash as <paramref name="step"/> begins.</summary>
    public static void Before(string step) => CrashIf(step);

    /// <summary>Kills the process when it is to crash once <paramref name="step"/>'s work is done.</summary>
    public static void After(string step)
    {
        if (s_crashAt is not null)
        {
            CrashIf(step + AfterSuffix);
        }
    }

    /// <summary>True once, at the first check of the step named by <c>FERRY_FAKE_FAIL_AT</c> while armed.</summary>
    public static bool ShouldFail(string step) =>
        s_failAt == step && Armed && Interlocked.Exchange(ref s_failed, 1) == 0;

    private static void CrashIf(string point)
    {
        if (s_crashAt is not null && Armed && (s_crashAt.Length > 0 ? s_crashAt : ArmedPoint()) == point)
        {
            Console.Error.WriteLine($"ferry: {CrashAtVariable}={point} reached: SIGKILL");
            Process.GetCurrentProcess().Kill();
        }
    }
}
