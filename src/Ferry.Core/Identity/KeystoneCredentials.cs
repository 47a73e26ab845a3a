namespace Ferry.Core.Identity;

/// <summary>
/// A service's Keystone password credentials (Nova's <c>[placement]</c> section as keystoneauth reads it:
/// auth_url, username, password, project_name, user_domain_name, project_domain_name).
/// </summary>
public sealed record KeystoneCredentials
{
    /// <summary>The identity API's v3 root, e.g. <c>http://127.0.0.1:5000/v3</c>.</summary>
    public required Uri AuthUrl { get; init; }
    public required string Username { get; init; }
    public required string Password { get; init; }
    public required string ProjectName { get; init; }
    public string UserDomainName { get; init; } = "Default";
    public string ProjectDomainName { get; init; } = "Default";

    /// <summary>The catalog interface whose endpoint is used when no URL is configured (keystoneauth's valid_interfaces; Nova: internal, public).</summary>
    public IReadOnlyList<string> ValidInterfaces { get; init; } = ["internal", "public"];

    public override string ToString() => $"{Username}@{AuthUrl}"; // never the password
}
