namespace Ferry.Virt;

/// <summary>
/// Nova's downtime_steps, shared by the drivers: the downtime limit starts at downtime/steps and rises by
/// (downtime − base)/steps every delay × data GiB seconds, reaching the full downtime after <c>steps</c> steps.
/// </summary>
public readonly struct DowntimeSchedule(LiveMigrationPlan plan, double dataGiB)
{
    private readonly int _steps = Math.Max(1, plan.DowntimeSteps);
    private readonly double _stepSeconds = Math.Max(0, plan.DowntimeDelaySecondsPerGiB) * dataGiB;
    private readonly double _downtimeMs = Math.Max(0, plan.DowntimeMs);

    /// <summary>The limit in ms <paramref name="elapsed"/> after the migration started.</summary>
    public double LimitMsAt(TimeSpan elapsed)
    {
        var baseMs = _downtimeMs / _steps;
        var offsetMs = (_downtimeMs - baseMs) / _steps;
        var step = _stepSeconds <= 0 ? _steps : (int)Math.Min(_steps, Math.Floor(elapsed.TotalSeconds / _stepSeconds));
        return baseMs + offsetMs * step;
    }
}
