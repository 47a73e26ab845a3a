using System.Text.Json;
using Ferry.ControlPlane.Persistence;
using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// Users, projects, roles and assignments read from the identity file, which the first start writes
/// (owner-only permissions) with the domain <c>Default</c>, projects <c>admin</c> and <c>demo</c>, roles
/// <c>admin</c>/<c>member</c>/<c>reader</c>, and the users <c>admin</c> (admin on admin) and <c>demo</c> (member on demo).
/// </summary>
public sealed partial class IdentityStore
{
    public const string DefaultDomainId = "default";
    private readonly IdentityConfig _config;
    /// <summary>Hashed once at start, so that the first unknown user's login costs what every other login costs.</summary>
    private readonly string _dummyHash;

    public IdentityStore(IdentityOptions options, ILogger<IdentityStore> logger)
    {
        if (!File.Exists(options.ConfigPath))
        {
            var created = CreateDefault(options.AdminPassword, options.DemoPassword);
            var directory = Path.GetDirectoryName(Path.GetFullPath(options.ConfigPath))!;
            Directory.CreateDirectory(directory);
            var temporary = $"{options.ConfigPath}.{Guid.NewGuid():N}.tmp";
            PrivateFiles.WriteAllText(temporary, JsonSerializer.Serialize(created, IdentityJsonContext.Default.IdentityConfig));
            try
            {
                // Never over another's: api replicas starting on one data directory must all read the same users and projects.
                File.Move(temporary, options.ConfigPath, overwrite: false);
                Log.Created(logger, options.ConfigPath);
            }
            catch (IOException) when (File.Exists(options.ConfigPath))
            {
                File.Delete(temporary); // another process wrote it first: its ids are everyone's
            }
        }
        PrivateFiles.Restrict(options.ConfigPath);
        _config = JsonSerializer.Deserialize(File.ReadAllText(options.ConfigPath), IdentityJsonContext.Default.IdentityConfig)
            ?? throw new InvalidOperationException($"{options.ConfigPath} is empty");
        _dummyHash = DummyHash();
    }

    public IdentityStore(IdentityConfig config)
    {
        _config = config;
        _dummyHash = DummyHash();
    }

    public IdentityConfig Config => _config;

    public static IdentityConfig CreateDefault(string adminPassword, string demoPassword, int iterations = PasswordHasher.DefaultIterations)
    {
        static string NewId() => Guid.NewGuid().ToString("N");
        var admin = new RoleEntry(NewId(), "admin");
        var member = new RoleEntry(NewId(), "member");
        var reader = new RoleEntry(NewId(), "reader");
        var adminProject = new ProjectEntry(NewId(), "admin", DefaultDomainId, "Bootstrap project for initializing the cloud.");
        var demoProject = new ProjectEntry(NewId(), "demo", DefaultDomainId, "Ferry demo project");
        var adminUser = new UserEntry(NewId(), "admin", DefaultDomainId, PasswordHasher.Hash(adminPassword, iterations));
        var demoUser = new UserEntry(NewId(), "demo", DefaultDomainId, PasswordHasher.Hash(demoPassword, iterations));
        return new IdentityConfig
        {
            Domains = [new DomainEntry(DefaultDomainId, "Default")],
            Projects = [adminProject, demoProject],
            Roles = [admin, member, reader],
            Users = [adminUser, demoUser],
            Assignments =
            [
                new(adminUser.Id, adminProject.Id, admin.Id),
                new(adminUser.Id, adminProject.Id, member.Id),
                new(adminUser.Id, adminProject.Id, reader.Id),
                new(demoUser.Id, demoProject.Id, member.Id),
                new(demoUser.Id, demoProject.Id, reader.Id),
            ],
        };
    }

    /// <summary>A domain by id or, when no id is given, by name.</summary>
    public DomainEntry? FindDomain(string? id, string? name) =>
        id is not null ? _config.Domains.Find(d => d.Id == id)
        : name is not null ? _config.Domains.Find(d => d.Name == name)
        : null;

    public DomainEntry DomainOf(string domainId) => FindDomain(domainId, null) ?? new DomainEntry(domainId, domainId);

    public UserEntry? FindUser(string id) => _config.Users.Find(u => u.Id == id);

    public UserEntry? FindUser(string name, string domainId) => _config.Users.Find(u => u.Name == name && u.DomainId == domainId);

    public ProjectEntry? FindProject(string id) => _config.Projects.Find(p => p.Id == id);

    public ProjectEntry? FindProject(string name, string domainId) => _config.Projects.Find(p => p.Name == name && p.DomainId == domainId);

    public IReadOnlyList<RoleEntry> RolesOf(string userId, string projectId) =>
        [.. _config.Assignments.Where(a => a.UserId == userId && a.ProjectId == projectId)
            .Select(a => _config.Roles.Find(r => r.Id == a.RoleId)).OfType<RoleEntry>().Distinct()];

    public IReadOnlyList<ProjectEntry> ProjectsOf(string userId) =>
        [.. _config.Projects.Where(p => _config.Assignments.Any(a => a.UserId == userId && a.ProjectId == p.Id))];

    /// <summary>
    /// The enabled user whose password matches, or null. A password is hashed even when there is no such user
    /// (against a dummy hash of the same cost), so the answer's timing does not tell whether a user exists.
    /// </summary>
    public UserEntry? CheckPassword(UserEntry? user, string password)
    {
        var matches = PasswordHasher.Verify(password, user?.PasswordHash ?? _dummyHash);
        return user is { Enabled: true } && matches ? user : null;
    }

    private string DummyHash() =>
        PasswordHasher.Hash(Guid.NewGuid().ToString(), _config.Users.Select(u => PasswordHasher.Iterations(u.PasswordHash)).FirstOrDefault(i => i is not null)
            ?? PasswordHasher.DefaultIterations);

    private static partial class Log
    {
        [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Wrote the identity file {Path} with the default users")]
        public static partial void Created(ILogger logger, string path);
    }
}
