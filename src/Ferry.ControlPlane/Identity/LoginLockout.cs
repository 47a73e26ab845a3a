using System.Collections.Concurrent;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// Keystone's account lockout (<c>[security_compliance] lockout_failure_attempts</c>/<c>lockout_duration</c>):
/// after that many wrong passwords in a row a user is refused, right password or not, until the duration has
/// passed since the last failure; a successful login clears the count. Counts live in memory (a restart clears them).
/// </summary>
public sealed class LoginLockout(IdentityOptions options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (int Failures, DateTimeOffset LastFailure)> _failures = new(StringComparer.Ordinal);

    public bool IsLocked(string userId)
    {
        if (options.LockoutFailureAttempts is not > 0 || !_failures.TryGetValue(userId, out var entry) || entry.Failures < options.LockoutFailureAttempts)
        {
            return false;
        }
        if (options.LockoutDuration is { } duration && entry.LastFailure + duration <= time.GetUtcNow())
        {
            _failures.TryRemove(new KeyValuePair<string, (int, DateTimeOffset)>(userId, entry));
            return false;
        }
        return true;
    }

    public void RecordFailure(string userId)
    {
        var now = time.GetUtcNow();
        _failures.AddOrUpdate(userId, (1, now), (_, entry) => (entry.Failures + 1, now));
    }

    public void Reset(string userId) => _failures.TryRemove(userId, out _);
}
