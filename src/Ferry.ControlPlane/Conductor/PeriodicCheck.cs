using Microsoft.Extensions.Hosting;

namespace Ferry.ControlPlane.Conductor;

/// <summary>
/// A conductor check run every <see cref="ControlPlaneOptions.BuildTimeoutCheckInterval"/> (Nova's periodic task spacing):
/// a pass that throws is logged and the next tick tries again, so a database outage does not end the check for good.
/// </summary>
public abstract class PeriodicCheck(ControlPlaneOptions options, TimeProvider time) : BackgroundService
{
    /// <summary>One pass of the check; <paramref name="cancellationToken"/> is the host's stopping token.</summary>
    protected abstract Task RunOnceAsync(CancellationToken cancellationToken);

    /// <summary>Logs a pass that failed.</summary>
    protected abstract void LogFailure(Exception ex);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.BuildTimeoutCheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await RunOnceAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogFailure(ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
