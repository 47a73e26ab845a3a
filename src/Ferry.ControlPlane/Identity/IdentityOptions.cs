namespace Ferry.ControlPlane.Identity;

/// <summary>Settings of the Keystone v3 subset.</summary>
public sealed class IdentityOptions
{
    /// <summary>The identity file; written with the default users on first start when missing.</summary>
    public required string ConfigPath { get; init; }

    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromHours(1);

    public string Region { get; init; } = "RegionOne";

    /// <summary>Services in the token's catalog; each gets a public, internal and admin endpoint at its URL.</summary>
    public IReadOnlyList<CatalogService> Catalog { get; init; } = [];

    /// <summary>Passwords the first start hashes into the identity file (documented development defaults).</summary>
    public string AdminPassword { get; init; } = "ferry-admin";

    public string DemoPassword { get; init; } = "ferry-demo";

    /// <summary>
    /// Keystone's <c>lockout_failure_attempts</c>: wrong passwords in a row before the account is locked; null or 0 disables
    /// the lockout (Keystone's default). Ferry locks after 6, the value Keystone's security-compliance guide uses.
    /// </summary>
    public int? LockoutFailureAttempts { get; init; } = 6;

    /// <summary>Keystone's <c>lockout_duration</c>: how long a locked account stays locked after its last failure; null locks until restart.</summary>
    public TimeSpan? LockoutDuration { get; init; } = TimeSpan.FromSeconds(1800);
}

/// <summary>A catalog entry: <c>compute</c>/<c>nova</c>/<c>http://127.0.0.1:8774/v2.1</c>.</summary>
public sealed record CatalogService(string Type, string Name, string Url);
