using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests;

/// <summary>
/// A whole Ferry that a test stops and starts again on the same data directory, as an operator stops and
/// restarts `./ferry up` on the same `var/`. Each start is a new <see cref="AllInOne"/> (new database
/// connections, new bus, new drivers): only what is on disk carries over.
/// </summary>
public sealed class RestartableFerry : IAsyncDisposable
{
    private readonly Action<FerryHostOptions>? _configure;

    /// <param name="dataDirectory">An existing data directory (e.g. one a killed child process left), else a new one; deleted on dispose either way.</param>
    public RestartableFerry(Action<FerryHostOptions>? configure = null, string? dataDirectory = null)
    {
        _configure = configure;
        DataDirectory = dataDirectory ?? TestTempNames.Directory("restart");
    }

    public string DataDirectory { get; }

    public AllInOne Ferry { get; private set; } = null!;

    public NovaClient Admin { get; private set; } = null!;

    private bool _started;

    public InstanceStore Instances => Ferry.Services.GetRequiredService<InstanceStore>();

    public MigrationStore Migrations => Ferry.Services.GetRequiredService<MigrationStore>();

    public async Task StartAsync()
    {
        // Port 0: each start binds free ports of its own (a restart may get other ones) and the options name them.
        var options = new FerryHostOptions
        {
            DataDirectory = DataDirectory,
            ComputeApiPort = 0,
            PlacementPort = 0,
            IdentityPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            Hosts = 3,
            FakeTimeScale = 0,
        };
        _configure?.Invoke(options);
        Ferry = AllInOne.Build(options, logging => logging.SetMinimumLevel(LogLevel.None));
        await Ferry.StartAsync(CancellationToken.None);
        Admin = new NovaClient(options.ComputeApiUrl, "admin:admin");
        _started = true;
    }

    /// <summary>Stops the whole Ferry as Ctrl-C does; the guests stay defined on their hosts.</summary>
    public async Task StopAsync()
    {
        // A start that threw leaves no client: stopping must not hide that start's own error.
        if (_started)
        {
            Admin.Dispose();
        }
        _started = false;
        await Ferry.DisposeAsync();
    }

    public async Task<string> BootAsync(string host, string flavor = "m1.tiny")
    {
        var server = new JsonObject
        {
            ["name"] = "vm",
            ["imageRef"] = "ferry-test-guest",
            ["flavorRef"] = flavor,
            ["networks"] = "none",
            ["availability_zone"] = $"nova:{host}",
        };
        var (status, body) = await Admin.PostAsync("servers", new JsonObject { ["server"] = server });
        Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
        var id = body!["server"]!["id"]!.GetValue<string>();
        await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE after boot");
        return id;
    }

    /// <summary>Runs a server action that must be accepted, then waits for <paramref name="done"/>.</summary>
    public async Task<Instance> ActAsync(string id, string action, Func<Instance, bool> done, string what)
    {
        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse(action)!);
        Assert.True(status is HttpStatusCode.Accepted or HttpStatusCode.OK or HttpStatusCode.NoContent, $"{action}: {(int)status} {body?.ToJsonString()}");
        return await WaitForAsync(id, done, what);
    }

    public async Task<Instance> WaitForAsync(string id, Func<Instance, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var instance = Instances.Find(id, includeDeleted: true) ?? throw new InvalidOperationException($"no instance {id}");
            if (condition(instance))
            {
                return instance;
            }
            if (DateTime.UtcNow > deadline)
            {
                var fault = Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id);
                Assert.Fail($"Waiting for {what}: instance {id} is vm_state {instance.VmState} task_state {instance.TaskState} host {instance.Host}; last fault: {fault?.Message}");
            }
            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Ferry is not null)
        {
            await StopAsync();
            Ferry = null!;
        }
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
