using System.Text.Json.Serialization;

namespace Ferry.ControlPlane.Identity;

/// <summary>The identity file (<c>var/identity.json</c>): Keystone's users, projects, roles and assignments.</summary>
public sealed class IdentityConfig
{
    public List<DomainEntry> Domains { get; set; } = [];
    public List<ProjectEntry> Projects { get; set; } = [];
    public List<RoleEntry> Roles { get; set; } = [];
    public List<UserEntry> Users { get; set; } = [];
    public List<RoleAssignment> Assignments { get; set; } = [];
}

public sealed record DomainEntry(string Id, string Name);

public sealed record ProjectEntry(string Id, string Name, string DomainId, string Description = "", bool Enabled = true);

public sealed record RoleEntry(string Id, string Name);

/// <summary>A user; <see cref="PasswordHash"/> is a <see cref="PasswordHasher"/> hash, never the password.</summary>
public sealed record UserEntry(string Id, string Name, string DomainId, string PasswordHash, bool Enabled = true);

public sealed record RoleAssignment(string UserId, string ProjectId, string RoleId);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(IdentityConfig))]
internal sealed partial class IdentityJsonContext : JsonSerializerContext;
