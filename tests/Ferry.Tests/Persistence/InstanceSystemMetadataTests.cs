using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Rpc.Conductor;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

public sealed class SqliteInstanceSystemMetadataTests() : InstanceSystemMetadataTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresInstanceSystemMetadataTests() : InstanceSystemMetadataTests(DatabaseEngine.PostgreSql);

/// <summary>An instance's system metadata (its boot image's properties) over each engine: written at create, kept by every update.</summary>
public abstract class InstanceSystemMetadataTests : IDisposable
{
    private readonly TestDatabase _files;
    private readonly InstanceStore _instances;

    protected InstanceSystemMetadataTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        var db = _files.Open();
        DatabaseSchema.Sync(db);
        _instances = new InstanceStore(db, TimeProvider.System);
    }

    public void Dispose() => _files.Dispose();

    private Instance Create(Dictionary<string, string> systemMetadata) =>
        _instances.Create(id => new Instance
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = "vm", ProjectId = "p", UserId = "u",
            Flavor = new Flavor { InternalId = 1, Id = "1", Name = "m1.tiny", MemoryMb = 512, Vcpus = 1, RootGb = 1 }, ImageRef = "img",
            VmState = VmState.Building, TaskState = TaskState.Scheduling, SystemMetadata = systemMetadata,
            CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
        });

    [Fact]
    public void Create_WithImageProperties_ReadBackAfterAnUpdateAndAReopen()
    {
        var created = Create(new() { ["image_hw_vif_model"] = "e1000", ["image_min_disk"] = "1", ["image_note"] = "ü" + new string('x', 253) });

        _instances.Update(new InstanceUpdateRequest { Uuid = created.Uuid, Host = "compute1", VmState = VmState.Active, SetTaskState = true, TaskState = null });
        var reopened = new InstanceStore(_files.Open(), TimeProvider.System).Find(created.Uuid)!;

        Assert.Equal(created.SystemMetadata, reopened.SystemMetadata);
        Assert.Equal("compute1", reopened.Host);
    }

    [Fact]
    public void Create_WithoutImageProperties_ReadsBackEmpty()
    {
        var created = Create([]);

        Assert.Empty(_instances.Find(created.Uuid)!.SystemMetadata);
    }
}
