using Ferry.ControlPlane.Identity;
using Ferry.ControlPlane.Persistence;
using Ferry.Tests.Api;
using Ferry.Tests.Persistence;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Identity;

public sealed class PasswordHasherTests
{
    [Fact]
    public void Hash_verifies_the_right_password_only()
    {
        var hash = PasswordHasher.Hash("ferry-admin", iterations: 1000);
        Assert.StartsWith("pbkdf2-sha256$1000$", hash, StringComparison.Ordinal);
        Assert.DoesNotContain("ferry-admin", hash, StringComparison.Ordinal);
        Assert.True(PasswordHasher.Verify("ferry-admin", hash));
        Assert.False(PasswordHasher.Verify("ferry-admiN", hash));
        Assert.False(PasswordHasher.Verify("", hash));
    }

    [Fact]
    public void Same_password_gets_a_fresh_salt()
    {
        Assert.NotEqual(PasswordHasher.Hash("x", 1000), PasswordHasher.Hash("x", 1000));
    }

    [Theory]
    [InlineData("")]
    [InlineData("ferry-admin")]
    [InlineData("pbkdf2-sha256$abc$AAAA$AAAA")]
    [InlineData("pbkdf2-sha256$1000$not base64$AAAA")]
    [InlineData("md5$1000$AAAA$AAAA")]
    [InlineData("pbkdf2-sha256$1000$AAAA$")]
    public void Malformed_hashes_never_verify(string encoded)
    {
        Assert.False(PasswordHasher.Verify("ferry-admin", encoded));
    }
}

public sealed class SqliteTokenStoreTests() : TokenStoreTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresTokenStoreTests() : TokenStoreTests(DatabaseEngine.PostgreSql)
{
    [Fact]
    public void Token_IssuedByOneReplica_IsValidOnAnotherUntilRevokedThere()
    {
        var other = OtherReplica();
        var token = IssueDemo();

        var seen = other.Validate(token.Id);

        Assert.NotNull(seen);
        Assert.Equal((token.User.Id, token.Project!.Id, token.AuditId, token.ExpiresAt), (seen.User.Id, seen.Project!.Id, seen.AuditId, seen.ExpiresAt));
        Assert.Equal(token.Roles.Select(r => r.Name).Order(), seen.Roles.Select(r => r.Name).Order());
        Assert.Equal(["password"], seen.Methods);
        Assert.Equal("", seen.User.PasswordHash);
        Assert.True(other.Revoke(token.Id));
        Assert.Null(Tokens.Validate(token.Id));
    }
}

/// <summary>The token store over each database engine.</summary>
public abstract class TokenStoreTests : IDisposable
{
    private static readonly DateTimeOffset s_start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private readonly ManualTimeProvider _time = new(s_start);
    private readonly IdentityStore _store = new(IdentityStore.CreateDefault("a", "d", iterations: 1000));
    private readonly IdentityOptions _options = new() { ConfigPath = "unused", TokenLifetime = TimeSpan.FromMinutes(10) };
    private readonly TestDatabase _files;
    private readonly TokenStore _tokens;

    protected TokenStoreTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        _tokens = new TokenStore(_options, _time, _files.Open());
    }

    public void Dispose() => _files.Dispose();

    private protected TokenStore Tokens => _tokens;

    /// <summary>A second process on the same database: its own connection and token store.</summary>
    private protected TokenStore OtherReplica() => new(_options, _time, _files.Open());

    [Fact]
    public void Token_StoredAsHashOnly_NeverAsItsId()
    {
        var token = IssueDemo();
        var stored = _files.Open().Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT id_hash, user_data FROM tokens");
            using var r = command.ExecuteReader();
            Assert.True(r.Read());
            return r.GetString(0) + r.GetString(1);
        });
        Assert.DoesNotContain(token.Id, stored, StringComparison.Ordinal);
        Assert.DoesNotContain("pbkdf2", stored, StringComparison.Ordinal);
    }

    [Fact]
    public void Token_ExpiredRows_ArePurgedWhenTheNextIsIssued()
    {
        IssueDemo();
        _time.Advance(TimeSpan.FromMinutes(11));
        IssueDemo();
        var rows = _files.Open().Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT COUNT(*) FROM tokens");
            return Convert.ToInt32(command.ExecuteScalar());
        });
        Assert.Equal(1, rows);
    }

    private protected IdentityToken IssueDemo()
    {
        var demo = _store.FindUser("demo", IdentityStore.DefaultDomainId)!;
        var project = _store.FindProject("demo", IdentityStore.DefaultDomainId)!;
        return _tokens.Issue(demo, project, _store.RolesOf(demo.Id, project.Id), ["password"]);
    }

    [Fact]
    public void Token_is_valid_until_it_expires()
    {
        var token = IssueDemo();
        Assert.Equal(s_start + TimeSpan.FromMinutes(10), token.ExpiresAt);
        Assert.False(token.IsAdmin);
        _time.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(token.AuditId, _tokens.Validate(token.Id)?.AuditId);
        Assert.Equal(token.AuditId, OtherReplica().Validate(token.Id)?.AuditId);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(_tokens.Validate(token.Id));
    }

    [Fact]
    public void Revoked_unknown_and_empty_tokens_are_invalid()
    {
        var token = IssueDemo();
        Assert.True(_tokens.Revoke(token.Id));
        Assert.Null(_tokens.Validate(token.Id));
        Assert.Null(OtherReplica().Validate(token.Id));
        Assert.Null(_tokens.Validate("garbled"));
        Assert.Null(_tokens.Validate(""));
        Assert.Null(_tokens.Validate(null));
    }

    [Fact]
    public void Tokens_are_opaque_and_distinct()
    {
        var a = IssueDemo();
        var b = IssueDemo();
        Assert.NotEqual(a.Id, b.Id);
        Assert.True(a.Id.Length >= 40);
        Assert.DoesNotContain(a.User.Id, a.Id, StringComparison.Ordinal);
    }

    [Fact]
    public void Timestamps_are_iso8601_with_z()
    {
        Assert.Equal("2026-11-23T10:00:00.000000Z", IdentityEndpoints.Timestamp(s_start));
        Assert.Equal("2026-11-23T10:00:00.000000Z", IdentityEndpoints.Timestamp(s_start.ToOffset(TimeSpan.FromHours(2))));
    }
}

public sealed class IdentityStoreTests
{
    [Fact]
    public void Default_file_has_admin_and_demo_with_hashed_passwords_and_owner_only_mode()
    {
        var directory = TestTempNames.Directory("identity");
        try
        {
            var path = Path.Combine(directory, "identity.json");
            var store = new IdentityStore(new IdentityOptions { ConfigPath = path, AdminPassword = "s3cret-admin", DemoPassword = "s3cret-demo" },
                NullLogger<IdentityStore>.Instance);
            var text = File.ReadAllText(path);
            Assert.DoesNotContain("s3cret", text, StringComparison.Ordinal);
            Assert.Contains("pbkdf2-sha256$", text, StringComparison.Ordinal);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            var admin = store.CheckPassword(store.FindUser("admin", IdentityStore.DefaultDomainId), "s3cret-admin");
            Assert.NotNull(admin);
            Assert.Null(store.CheckPassword(store.FindUser("admin", IdentityStore.DefaultDomainId), "s3cret-demo"));
            var adminProject = store.FindProject("admin", IdentityStore.DefaultDomainId)!;
            var demoProject = store.FindProject("demo", IdentityStore.DefaultDomainId)!;
            Assert.Equal(["admin", "member", "reader"], store.RolesOf(admin.Id, adminProject.Id).Select(r => r.Name).Order());
            var demo = store.FindUser("demo", IdentityStore.DefaultDomainId)!;
            Assert.Equal(["member", "reader"], store.RolesOf(demo.Id, demoProject.Id).Select(r => r.Name).Order());
            Assert.Empty(store.RolesOf(demo.Id, adminProject.Id));
            Assert.Equal("Default", store.FindDomain(null, "Default")!.Name);

            // A second start reads the same file: same ids.
            var again = new IdentityStore(new IdentityOptions { ConfigPath = path }, NullLogger<IdentityStore>.Instance);
            Assert.Equal(admin.Id, again.FindUser("admin", IdentityStore.DefaultDomainId)!.Id);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Constructor_ReplicasStartingTogetherOnAFreshDirectory_AllReadTheSameUsersAndProjects()
    {
        // Two api replicas of `ferry distributed` create the identity file on their first request: each kept the users and
        // projects it had drawn itself, so a token of one replica named a project the other did not know.
        var directory = TestTempNames.Directory("identity");
        try
        {
            var path = Path.Combine(directory, "identity.json");
            using var together = new Barrier(4);
            var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Factory.StartNew(() =>
            {
                together.SignalAndWait();
                return new IdentityStore(new IdentityOptions { ConfigPath = path }, NullLogger<IdentityStore>.Instance);
            }, TaskCreationOptions.LongRunning)));

            var onDisk = new IdentityStore(new IdentityOptions { ConfigPath = path }, NullLogger<IdentityStore>.Instance);
            var demoProject = onDisk.FindProject("demo", IdentityStore.DefaultDomainId)!.Id;
            var demoUser = onDisk.FindUser("demo", IdentityStore.DefaultDomainId)!.Id;
            Assert.All(stores, store => Assert.Equal((demoProject, demoUser),
                (store.FindProject("demo", IdentityStore.DefaultDomainId)!.Id, store.FindUser("demo", IdentityStore.DefaultDomainId)!.Id)));
            Assert.Equal(["identity.json"], Directory.GetFiles(directory).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
