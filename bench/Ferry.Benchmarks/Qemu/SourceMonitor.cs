using System.Diagnostics;
using Ferry.Virt.Qemu;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// Watches the source QEMU beside the driver's own monitor (QMP answers replies by id, so both can ask) to tell how a
/// migration finished: the highest auto-converge throttle, whether it entered post-copy, and when the guest was paused.
/// </summary>
internal sealed class SourceMonitor(QemuDriver source, string uuid, Stopwatch clock)
{
    private static readonly TimeSpan s_interval = TimeSpan.FromMilliseconds(250);

    public long MaxThrottlePercent { get; private set; }

    /// <summary>Each change of auto-converge's throttle: when (the clock's ms) and to what percentage.</summary>
    public List<(double AtMs, long Percent)> ThrottleChanges { get; } = [];

    public bool SawPostCopy { get; private set; }

    /// <summary>When the source was first seen paused (not in QEMU's own stop-and-copy): the force-complete pause.</summary>
    public double? PausedAtMs { get; private set; }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(s_interval, cancellationToken);
                try
                {
                    var migrate = await source.ExecuteQmpAsync(uuid, "query-migrate", null, cancellationToken);
                    var status = migrate.TryGetProperty("status", out var s) ? s.GetString() : null;
                    if (migrate.TryGetProperty("cpu-throttle-percentage", out var throttle) && throttle.TryGetInt64(out var percent))
                    {
                        MaxThrottlePercent = Math.Max(MaxThrottlePercent, percent);
                        if (ThrottleChanges.Count == 0 ? percent > 0 : ThrottleChanges[^1].Percent != percent)
                        {
                            ThrottleChanges.Add((clock.Elapsed.TotalMilliseconds, percent));
                        }
                    }
                    SawPostCopy |= status is not null && status.StartsWith("postcopy", StringComparison.Ordinal);
                    if (status is "active" && PausedAtMs is null)
                    {
                        var run = await source.ExecuteQmpAsync(uuid, "query-status", null, cancellationToken);
                        if (run.TryGetProperty("status", out var r) && r.GetString() == "paused")
                        {
                            PausedAtMs = clock.Elapsed.TotalMilliseconds;
                        }
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The source may go away as the migration ends; the driver reports the outcome.
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public string Mode(bool postCopyReported) =>
        postCopyReported || SawPostCopy ? "post-copy"
        : PausedAtMs is not null ? "paused (force-complete)"
        : MaxThrottlePercent > 0 ? $"auto-converge ({MaxThrottlePercent}% throttle)"
        : "pre-copy";
}
