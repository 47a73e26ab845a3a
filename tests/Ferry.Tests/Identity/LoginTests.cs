using Ferry.ControlPlane.Identity;
using Ferry.Tests.Api;

namespace Ferry.Tests.Identity;

/// <summary>Login hardening: Keystone's account lockout, and a hash for unknown users so timing reveals nothing.</summary>
public sealed class LoginTests
{
    private readonly ManualTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 10, 0, 0, TimeSpan.Zero));

    private LoginLockout Lockout(int? attempts = 3, TimeSpan? duration = null) =>
        new(new IdentityOptions { ConfigPath = "unused", LockoutFailureAttempts = attempts, LockoutDuration = duration ?? TimeSpan.FromMinutes(30) }, _time);

    [Fact]
    public void IsLocked_AfterAttemptsFailures_UntilDurationPassedSinceLastFailure()
    {
        var lockout = Lockout();
        lockout.RecordFailure("u");
        lockout.RecordFailure("u");
        Assert.False(lockout.IsLocked("u"));
        lockout.RecordFailure("u");
        Assert.True(lockout.IsLocked("u"));
        Assert.False(lockout.IsLocked("someone-else"));

        _time.Advance(TimeSpan.FromMinutes(29));
        Assert.True(lockout.IsLocked("u"));
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.False(lockout.IsLocked("u"));
        // The count started again: one more failure does not lock.
        lockout.RecordFailure("u");
        Assert.False(lockout.IsLocked("u"));
    }

    [Fact]
    public void Reset_AfterSuccess_ClearsTheCount()
    {
        var lockout = Lockout();
        lockout.RecordFailure("u");
        lockout.RecordFailure("u");
        lockout.Reset("u");
        lockout.RecordFailure("u");
        Assert.False(lockout.IsLocked("u"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0)]
    public void IsLocked_LockoutDisabled_Never(int? attempts)
    {
        var lockout = Lockout(attempts);
        for (var i = 0; i < 100; i++)
        {
            lockout.RecordFailure("u");
        }
        Assert.False(lockout.IsLocked("u"));
    }

    [Fact]
    public void CheckPassword_UnknownOrDisabledUser_StillHashesOnce()
    {
        var store = new IdentityStore(IdentityStore.CreateDefault("a", "d", iterations: 1000));
        var demo = store.FindUser("demo", IdentityStore.DefaultDomainId)!;
        store.Config.Users.Add(demo with { Id = "off", Name = "off", Enabled = false });

        foreach (var (user, password) in new[] { (demo, "wrong"), (demo, "d"), (null, "d"), (store.FindUser("off"), "d") })
        {
            var before = PasswordHasher.VerificationsOnThisThread;
            var result = store.CheckPassword(user, password);
            Assert.Equal(before + 1, PasswordHasher.VerificationsOnThisThread);
            Assert.Equal(user == demo && password == "d", result is not null);
        }
    }

    [Fact]
    public void Iterations_ReadsTheCostOfOurHashesOnly()
    {
        Assert.Equal(1000, PasswordHasher.Iterations(PasswordHasher.Hash("x", 1000)));
        Assert.Null(PasswordHasher.Iterations("bcrypt$whatever"));
    }
}
