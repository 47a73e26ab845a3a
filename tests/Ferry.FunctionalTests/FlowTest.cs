using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests;

/// <summary>Base of the flow tests: helpers to boot, act and wait, and the invariant check after every test.</summary>
public abstract class FlowTest<TFixture>(TFixture fixture) : IClassFixture<TFixture>, IAsyncLifetime
    where TFixture : FerryFixture
{
    /// <summary>How long a wait may take before the test fails (real QEMU guests need longer than fake ones).</summary>
    protected virtual TimeSpan WaitLimit => TimeSpan.FromSeconds(20);

    protected TFixture Fixture { get; } = fixture;
    protected NovaClient Admin => Fixture.Admin;

    public Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        await Invariants.AssertQuietAndConsistentAsync(Fixture.Ferry);
        foreach (var compute in Fixture.Ferry.Computes.Values)
        {
            (compute.Driver as FakeDriver)?.Faults.Clear();
        }
    }

    protected FakeDriver Driver(string host) => (FakeDriver)Fixture.Ferry.Computes[host].Driver;

    protected InstanceStore Instances => Fixture.Ferry.Services.GetRequiredService<InstanceStore>();

    protected MigrationStore Migrations => Fixture.Ferry.Services.GetRequiredService<MigrationStore>();

    /// <summary>A copy of the test guest's image with these properties, under a name of its own.</summary>
    protected async Task<string> ImageWithAsync(string name, Dictionary<string, string> properties)
    {
        var catalog = Fixture.Ferry.Services.GetRequiredService<CatalogStore>();
        var guest = await catalog.FindImageAsync(Seed.TestImageId, CancellationToken.None) ?? throw new InvalidOperationException("no test guest image");
        var image = guest with { Id = Guid.NewGuid().ToString(), Name = name + "-" + Guid.NewGuid().ToString("N")[..8], Properties = properties };
        await catalog.SaveImageAsync(image, CancellationToken.None);
        return image.Id;
    }

    /// <summary>Boots a server (on a given host when asked) and waits until it is ACTIVE.</summary>
    protected async Task<string> BootAsync(string? host = null, string flavor = "m1.tiny", Dictionary<string, string>? metadata = null, string name = "vm",
        JsonObject? schedulerHints = null, JsonNode? networks = null, bool configDrive = false, string image = "ferry-test-guest")
    {
        var server = new JsonObject
        {
            ["name"] = name,
            ["imageRef"] = image,
            ["flavorRef"] = flavor,
            ["networks"] = networks ?? "none",
        };
        if (configDrive)
        {
            server["config_drive"] = true;
        }
        if (host is not null)
        {
            server["availability_zone"] = $"nova:{host}";
        }
        if (metadata is not null)
        {
            server["metadata"] = new JsonObject(metadata.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value)));
        }
        var request = new JsonObject { ["server"] = server };
        if (schedulerHints is not null)
        {
            request["os:scheduler_hints"] = schedulerHints;
        }
        var (status, body) = await Admin.PostAsync("servers", request);
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after boot");
        return id;
    }

    protected async Task<Instance> WaitForAsync(string id, Func<Instance, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + WaitLimit;
        while (true)
        {
            var instance = Instances.Find(id, includeDeleted: true) ?? throw new InvalidOperationException($"no instance {id}");
            if (condition(instance))
            {
                return instance;
            }
            if (DateTime.UtcNow > deadline)
            {
                var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id);
                Assert.Fail($"Waiting for {what}: instance {id} is vm_state {instance.VmState} task_state {instance.TaskState} host {instance.Host}; last fault: {fault?.Message}");
            }
            await Task.Delay(10);
        }
    }

    protected async Task<Migration> WaitForMigrationAsync(string instanceId, Func<Migration, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + WaitLimit;
        while (true)
        {
            var migration = Migrations.List(new MigrationFilter(InstanceUuid: instanceId)).FirstOrDefault();
            if (migration is not null && condition(migration))
            {
                return migration;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Waiting for {what}: newest migration of {instanceId} is {migration?.MigrationType} {migration?.Status}");
            }
            await Task.Delay(5);
        }
    }

    /// <summary>
    /// Waits until the instance's newest migration is final and its task_state cleared. A second move of the same
    /// instance passes the first's migration as <paramref name="after"/>: its record is written by the conductor after
    /// the API's 202, so until then the newest migration is the first move's, already final.
    /// </summary>
    protected async Task<(Instance Instance, Migration Migration)> WaitForMoveEndAsync(string id, Migration? after = null)
    {
        var migration = await WaitForMigrationAsync(
            id,
            m => m.Id > (after?.Id ?? 0) && (MigrationStatus.Final.Contains(m.Status) || m.Status is MigrationStatus.Finished or MigrationStatus.Done),
            after is null ? "the move to end" : $"a move after migration {after.Id} to end");
        var instance = await WaitForAsync(id, i => i.TaskState is null, "task_state cleared");
        return (instance, Migrations.Get(migration.Uuid));
    }

    protected async Task<HttpStatusCode> LiveMigrateAsync(string id, string? host = null, object? blockMigration = null, string microversion = "2.95")
    {
        var body = new JsonObject
        {
            ["os-migrateLive"] = new JsonObject
            {
                ["host"] = host,
                ["block_migration"] = blockMigration is bool b ? JsonValue.Create(b) : JsonValue.Create((string?)blockMigration ?? "auto"),
            },
        };
        var (status, response) = await Admin.ActionAsync(id, body, microversion);
        Assert.True(status is HttpStatusCode.Accepted or HttpStatusCode.Conflict or HttpStatusCode.BadRequest, $"{(int)status} {response?.ToJsonString()}");
        return status;
    }

    protected string? LastFault(string id) => Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id)?.Message;

    /// <summary>Asserts how a move ended; a failure names the instance's last fault, which says why a move failed.</summary>
    protected void AssertMoveEnded(string id, (Instance Instance, Migration Migration) end, string status, string host) =>
        Assert.True(end.Migration.Status == status && end.Instance.Host == host,
            $"expected {status} on {host}, got {end.Migration.Status} on {end.Instance.Host}; last fault: {LastFault(id) ?? "none"}");
}
