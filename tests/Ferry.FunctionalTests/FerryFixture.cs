using Ferry.Host;
using Ferry.Host.Messaging;
using Ferry.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests;

/// <summary>
/// A whole Ferry in the test process: the compute API and placement on real Kestrel at free loopback
/// ports, SQLite in a temp directory, the in-process bus and fake hosts. Subclasses tune it.
/// With <c>FERRY_TEST_SHAPE=postgresql-rabbitmq</c> (the second pass of <c>./ferry test</c>) the same fixture runs
/// over a database of its own on the run's PostgreSQL server and an exchange of its own on the run's RabbitMQ node.
/// </summary>
public class FerryFixture : IAsyncLifetime
{
    /// <summary>The run's one RabbitMQ node for the PostgreSQL + RabbitMQ pass (the script removes it after the run).</summary>
    internal static Task<RabbitMqServer> SharedBrokerAsync() => s_sharedBroker.Value;

    private static readonly Lazy<Task<RabbitMqServer>> s_sharedBroker = new(async () =>
    {
        var broker = new RabbitMqServer();
        await broker.InitializeAsync();
        return broker;
    });

    private string _dataDirectory = "";

    public AllInOne Ferry { get; private set; } = null!;
    public NovaClient Admin { get; private set; } = null!;
    public NovaClient Demo { get; private set; } = null!;

    protected virtual void Configure(FerryHostOptions options)
    {
    }

    protected virtual void Configure(AllInOne ferry)
    {
    }

    protected virtual void ConfigureLogging(ILoggingBuilder logging) => logging.SetMinimumLevel(LogLevel.None);

    protected virtual string NewDataDirectory() => TestTempNames.Directory("test");

    /// <summary>Runs before the Ferry stops (e.g. to remove what the hosts still run).</summary>
    protected virtual Task BeforeDisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        _dataDirectory = NewDataDirectory();
        Directory.CreateDirectory(_dataDirectory);
        var options = new FerryHostOptions
        {
            DataDirectory = _dataDirectory,
            ComputeApiPort = 0,
            PlacementPort = 0,
            IdentityPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            Hosts = 3,
            FakeTimeScale = 0,
        };
        if (Environment.GetEnvironmentVariable("FERRY_TEST_SHAPE") == "postgresql-rabbitmq")
        {
            options.Database = PostgresServer.Shared.CreateDatabase("flow");
            options.RabbitMq = new RabbitMqOptions
            {
                Url = (await s_sharedBroker.Value).Url,
                Exchange = $"ferry-flow-{Guid.NewGuid():N}",
                RecoveryInterval = TimeSpan.FromMilliseconds(500),
                UnavailableWait = TimeSpan.FromSeconds(30),
            };
        }
        Configure(options);
        Ferry = AllInOne.Build(options, ConfigureLogging);
        Configure(Ferry);
        await Ferry.StartAsync(CancellationToken.None);
        // Flow tests keep many servers in one project: lift Nova's default quotas (10 instances, 20 cores) for them.
        await Ferry.Services.GetRequiredService<Ferry.ControlPlane.Persistence.QuotaStore>().SetClassLimitsAsync(
            "default", new Dictionary<string, long> { ["instances"] = 1000, ["cores"] = 10000, ["ram"] = 10_000_000 }, CancellationToken.None);
        Admin = new NovaClient(options.ComputeApiUrl, "admin:admin");
        Demo = new NovaClient(options.ComputeApiUrl, "demo:demo");
    }

    public async Task DisposeAsync()
    {
        await BeforeDisposeAsync();
        Admin.Dispose();
        Demo.Dispose();
        await Ferry.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
