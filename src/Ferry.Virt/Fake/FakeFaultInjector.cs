using Ferry.Core.Errors;

namespace Ferry.Virt.Fake;

/// <summary>
/// Failure and delay hooks of one fake driver, keyed by the names in <see cref="FakeSteps"/>.
/// Every driver method calls <see cref="Check"/> with its step, so tests can break any rollback path.
/// </summary>
public sealed class FakeFaultInjector(TimeProvider? timeProvider = null)
{
    private const int Always = -1;

    private readonly TimeProvider _timeProvider = timeProvider ?? TimeProvider.System;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, int> _failures = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TimeSpan> _delays = new(StringComparer.Ordinal);

    /// <summary>Makes the next <paramref name="times"/> checks of <paramref name="step"/> fail.</summary>
    public void FailNext(string step, int times = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(times);
        lock (_lock)
        {
            _failures.TryGetValue(step, out var armed);
            _failures[step] = armed == Always ? Always : armed + times;
        }
    }

    /// <summary>Makes every check of <paramref name="step"/> fail until <see cref="Clear"/>.</summary>
    public void FailAlways(string step)
    {
        lock (_lock)
        {
            _failures[step] = Always;
        }
    }

    /// <summary>Makes every check of <paramref name="step"/> wait <paramref name="delay"/> first; zero removes it.</summary>
    public void Delay(string step, TimeSpan delay)
    {
        lock (_lock)
        {
            if (delay <= TimeSpan.Zero)
            {
                _delays.Remove(step);
            }
            else
            {
                _delays[step] = delay;
            }
        }
    }

    /// <summary>Disarms every failure and delay.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _failures.Clear();
            _delays.Clear();
        }
    }

    /// <summary>Throws <see cref="InjectedFailureException"/> when <paramref name="step"/> is armed.</summary>
    public void Check(string step)
    {
        if (ShouldFail(step))
        {
            throw new InjectedFailureException(step);
        }
    }

    /// <summary>Waits the step's delay, if any, then <see cref="Check"/>s it.</summary>
    public async ValueTask CheckAsync(string step, CancellationToken cancellationToken)
    {
        await FakeCrashPoint.HoldAsync(step, cancellationToken);
        await DelayAsync(step, cancellationToken);
        Check(step);
    }

    internal async ValueTask DelayAsync(string step, CancellationToken cancellationToken)
    {
        TimeSpan delay;
        lock (_lock)
        {
            if (!_delays.TryGetValue(step, out delay))
            {
                return;
            }
        }
        await Task.Delay(delay, _timeProvider, cancellationToken);
    }

    /// <summary>Consumes one armed failure of the step; true when the caller must fail.</summary>
    internal bool ShouldFail(string step)
    {
        FakeCrashPoint.Before(step);
        if (FakeCrashPoint.ShouldFail(step))
        {
            return true;
        }
        lock (_lock)
        {
            if (!_failures.TryGetValue(step, out var armed))
            {
                return false;
            }
            if (armed != Always)
            {
                if (armed <= 1)
                {
                    _failures.Remove(step);
                }
                else
                {
                    _failures[step] = armed - 1;
                }
            }
            return true;
        }
    }
}
