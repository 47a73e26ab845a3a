using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.ControlPlane;
using Ferry.ControlPlane.Api;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Core.Rpc;
using Ferry.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Api;

/// <summary>A clock the tests move by hand.</summary>
public sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>One cast the API sent, as it crossed the transport.</summary>
public sealed record RecordedCast(string Topic, string Method, JsonObject Payload);

/// <summary>Listens on a topic and records every message.</summary>
public sealed class RecordingDispatcher(string topic, ComputeApiFixture fixture) : IRpcDispatcher
{
    public Task<byte[]> DispatchAsync(string method, byte[] payload, CancellationToken cancellationToken)
    {
        fixture.Record(new RecordedCast(topic, method, JsonNode.Parse(payload)!.AsObject()));
        return Task.FromResult("{}"u8.ToArray());
    }
}

/// <summary>The compute API on real Kestrel at 127.0.0.1:0 over a temp SQLite file (or PostgreSQL, see InitializeAsync) and the in-process bus.</summary>
public sealed class ComputeApiFixture : IAsyncLifetime
{
    private readonly string _dbPath = TestTempNames.Path("api", ".db");
    private readonly ConcurrentQueue<RecordedCast> _casts = new();
    private readonly SemaphoreSlim _castArrived = new(0);
    private readonly List<IAsyncDisposable> _listeners = [];
    private WebApplication? _app;

    public ManualTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero));
    public FerryDatabase Db { get; private set; } = null!;
    public InstanceStore Instances { get; private set; } = null!;
    public MigrationStore Migrations { get; private set; } = null!;
    public ActionStore Actions { get; private set; } = null!;
    public ServiceStore Services { get; private set; } = null!;
    public VolumeStore Volumes { get; private set; } = null!;
    public ComputeNodeStore Nodes { get; private set; } = null!;
    public CatalogStore Catalog { get; private set; } = null!;
    public ServerGroupStore Groups { get; private set; } = null!;
    public InProcessTransport Transport { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public ControlPlaneOptions Options { get; } = new();

    /// <summary>While true, every cast and call the API makes fails as it does when the broker is down (nothing sent).</summary>
    public bool BusDown { get; set; }

    public async Task InitializeAsync()
    {
        // FERRY_TEST_DATABASE=postgresql runs the API tests over a fresh database on the test PostgreSQL server
        // (its temp dir is removed by the next run: these classes are not in the postgres collection).
        Db = new FerryDatabase(Environment.GetEnvironmentVariable("FERRY_TEST_DATABASE") == "postgresql"
            ? Ferry.Tests.Shared.PostgresServer.Shared.CreateDatabase("api")
            : _dbPath);
        Db.Migrate(ComputeSchema.Component, ComputeSchema.Scripts);
        Db.Migrate(NetworkSchema.Component, NetworkSchema.Scripts);
        Db.Migrate(VolumeSchema.Component, VolumeSchema.Scripts);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(Db);
        builder.Services.AddSingleton<TimeProvider>(Time);
        builder.Services.AddSingleton(Options);
        builder.Services.AddSingleton(new RpcOptions());
        builder.Services.AddSingleton<InProcessTransport>();
        builder.Services.AddSingleton<IRpcTransport>(sp => new OutageTransport(sp.GetRequiredService<InProcessTransport>(), () => BusDown));
        builder.Services.AddSingleton<Ferry.Core.Volumes.IVolumeBackend>(new Ferry.ControlPlane.Volumes.LocalFileVolumeBackend(_dbPath + ".volumes"));
        builder.Services.AddFerryComputeApi();
        _app = builder.Build();
        _app.MapFerryComputeApi();
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Client = new HttpClient { BaseAddress = new Uri(address.TrimEnd('/') + "/") };

        var sp = _app.Services;
        Instances = sp.GetRequiredService<InstanceStore>();
        Migrations = sp.GetRequiredService<MigrationStore>();
        Actions = sp.GetRequiredService<ActionStore>();
        Services = sp.GetRequiredService<ServiceStore>();
        Nodes = sp.GetRequiredService<ComputeNodeStore>();
        Catalog = sp.GetRequiredService<CatalogStore>();
        Groups = sp.GetRequiredService<ServerGroupStore>();
        Volumes = sp.GetRequiredService<VolumeStore>();
        Transport = sp.GetRequiredService<InProcessTransport>();
        _listeners.Add(Transport.Listen(Topics.Conductor, new RecordingDispatcher(Topics.Conductor, this)));

        // Most tests add servers to the admin project by the dozen; quota tests use projects of their own.
        sp.GetRequiredService<QuotaStore>().SetLimits("admin", null, new Dictionary<string, long> { ["instances"] = -1, ["cores"] = -1, ["ram"] = -1 });
        Catalog.CreateFlavor(id => new Flavor { InternalId = id, Id = "1", Name = "m1.tiny", Vcpus = 1, MemoryMb = 512, RootGb = 1 });
        Catalog.CreateFlavor(id => new Flavor { InternalId = id, Id = "2", Name = "m1.small", Vcpus = 1, MemoryMb = 2048, RootGb = 20 });
        Catalog.SaveImage(new Image { Id = "155d900f-4e14-4e4c-a73d-069cbf4541e6", Name = "cirros", CreatedAt = Time.GetUtcNow() });
    }

    internal void Record(RecordedCast cast)
    {
        _casts.Enqueue(cast);
        _castArrived.Release();
    }

    /// <summary>Adds a compute host (service + node) and listens on its topic.</summary>
    public string AddHost(string? name = null, bool up = true)
    {
        var host = name ?? $"cmp-{Guid.NewGuid():N}"[..12];
        var service = Services.Report(host, "nova-compute", "compute", 1);
        if (!up)
        {
            Services.Update(service.Id, s => s with { ForcedDown = true });
        }
        Nodes.Upsert(new ComputeNode
        {
            Uuid = Guid.NewGuid().ToString(), Host = host, HypervisorHostname = host, HypervisorType = "fake",
            HypervisorVersion = 1000, Vcpus = 8, MemoryMb = 8192, LocalGb = 100,
        });
        lock (_listeners)
        {
            _listeners.Add(Transport.Listen(Topics.Compute(host), new RecordingDispatcher(Topics.Compute(host), this)));
        }
        return host;
    }

    public Instance AddInstance(string? host, string project = "admin", VmState vm = VmState.Active, TaskState? task = null, bool locked = false, string flavorId = "1")
    {
        var flavor = Catalog.FindFlavor(flavorId)!;
        var now = Time.GetUtcNow();
        return Instances.Create(id => new Instance
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), DisplayName = $"vm-{id}", ProjectId = project, UserId = project,
            Host = host, Node = host, Flavor = flavor, ImageRef = "155d900f-4e14-4e4c-a73d-069cbf4541e6",
            VmState = vm, TaskState = task, PowerState = vm == VmState.Active ? PowerState.Running : PowerState.Shutdown,
            Locked = locked, CreatedAt = now, UpdatedAt = now, LaunchedAt = now,
        });
    }

    public Migration AddMigration(Instance instance, string type, string status, string? dest = null) =>
        Migrations.Create(id => new Migration
        {
            Id = id, Uuid = Guid.NewGuid().ToString(), InstanceUuid = instance.Uuid, MigrationType = type, Status = status,
            SourceCompute = instance.Host, SourceNode = instance.Node, DestCompute = dest, DestNode = dest,
            OldInstanceTypeId = instance.Flavor.InternalId, NewInstanceTypeId = instance.Flavor.InternalId,
            MemoryTotal = 1000, MemoryProcessed = 400, MemoryRemaining = 600,
            UserId = "admin", ProjectId = "admin",
        });

    /// <summary>Waits for a cast matching <paramref name="match"/>; fails naming what was seen.</summary>
    public async Task<RecordedCast> WaitForCastAsync(string method, Func<RecordedCast, bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            if (_casts.FirstOrDefault(c => c.Method == method && match(c)) is { } found)
            {
                return found;
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !await _castArrived.WaitAsync(left))
            {
                throw new TimeoutException($"No {method} cast arrived; saw: {string.Join(", ", _casts.Select(c => $"{c.Topic}/{c.Method}"))}");
            }
        }
    }

    public bool HasCast(string method, string instanceUuid) =>
        _casts.Any(c => c.Method == method && c.Payload.ToJsonString().Contains(instanceUuid, StringComparison.Ordinal));

    public async Task<ApiResponse> SendAsync(HttpMethod method, string path, object? body = null, string? token = "admin:admin", string? version = "2.95", Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Add("X-Auth-Token", token);
        }
        if (version is not null)
        {
            request.Headers.Add("OpenStack-API-Version", $"compute {version}");
        }
        if (body is not null)
        {
            var text = body as string ?? ((JsonNode)body).ToJsonString();
            request.Content = new StringContent(text, Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
        }
        configure?.Invoke(request);
        using var response = await Client.SendAsync(request, CancellationToken.None);
        var raw = await response.Content.ReadAsStringAsync(CancellationToken.None);
        JsonNode? json = null;
        if (raw.Length > 0)
        {
            try
            {
                json = JsonNode.Parse(raw);
            }
            catch (System.Text.Json.JsonException)
            {
            }
        }
        var headers = response.Headers.Concat(response.Content.Headers).ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
        return new ApiResponse((int)response.StatusCode, json, raw, headers);
    }

    public async Task DisposeAsync()
    {
        foreach (var listener in _listeners)
        {
            await listener.DisposeAsync();
        }
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        Client?.Dispose();
        Db?.Dispose();
        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            try
            {
                File.Delete(_dbPath + suffix);
            }
            catch (IOException)
            {
            }
        }
    }
}

public sealed record ApiResponse(int Status, JsonNode? Json, string Raw, Dictionary<string, string> Headers)
{
    /// <summary>The message of a Nova fault body <c>{"faultName": {"code", "message"}}</c>.</summary>
    public string? FaultMessage => Json is JsonObject o && o.Count == 1 ? o.First().Value?["message"]?.GetValue<string>() : null;

    public string? FaultName => Json is JsonObject o && o.Count == 1 ? o.First().Key : null;
}

/// <summary>All API test classes share one host: building the endpoints once keeps the suite fast.</summary>
[CollectionDefinition(Name)]
public sealed class ComputeApiCollection : ICollectionFixture<ComputeApiFixture>
{
    public const string Name = "ComputeApi";
}

/// <summary>The fixture's bus with an off switch: a broker outage as the API sees it (RpcUnavailableException, nothing sent).</summary>
public sealed class OutageTransport(IRpcTransport inner, Func<bool> down) : IRpcTransport
{
    public Task CastAsync(string topic, string method, byte[] payload, CancellationToken cancellationToken) =>
        down() ? throw new Ferry.Core.Errors.RpcUnavailableException("Cannot reach the message broker") : inner.CastAsync(topic, method, payload, cancellationToken);

    public Task<byte[]> CallAsync(string topic, string method, byte[] payload, TimeSpan timeout, CancellationToken cancellationToken) =>
        down() ? throw new Ferry.Core.Errors.RpcUnavailableException("Cannot reach the message broker") : inner.CallAsync(topic, method, payload, timeout, cancellationToken);

    public IAsyncDisposable Listen(string topic, IRpcDispatcher dispatcher) => inner.Listen(topic, dispatcher);
}
