using System.Collections.Concurrent;
using Ferry.Compute;
using Ferry.Core.Placement;
using Ferry.Core.Rpc;
using Ferry.Virt;
using Ferry.Virt.Fake;
using Ferry.Virt.Qemu;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Roles;

/// <summary>
/// The compute agents of one process (one for <c>ferry compute</c>, N for the all-in-one): each host's driver and
/// <see cref="ComputeManager"/>, started, restarted (a restarted agent finds the guests its host kept) and stopped.
/// Agents reach the control plane only through the bus and the placement API.
/// </summary>
public sealed class ComputeAgents : IAsyncDisposable
{
    private readonly FerryHostOptions _options;
    private readonly IRpcTransport _transport;
    private readonly RpcOptions _rpcOptions;
    private readonly HttpClient _placementHttp;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly ConcurrentDictionary<string, FakeHypervisorState> _hypervisors = new();

    /// <param name="placementHandler">What placement requests go through (a separate agent's Keystone login); null: straight out.</param>
    public ComputeAgents(FerryHostOptions options, IRpcTransport transport, RpcOptions rpcOptions, TimeProvider time, ILoggerFactory loggers,
        HttpMessageHandler? placementHandler = null)
    {
        _options = options;
        _transport = transport;
        _rpcOptions = rpcOptions;
        _time = time;
        _loggers = loggers;
        _placementHttp = placementHandler is null ? new HttpClient() : new HttpClient(placementHandler, disposeHandler: true);
        _placementHttp.BaseAddress = new Uri(options.PlacementUrl + "/");
    }

    /// <summary>Running (or stopped) compute agents by host; agents start concurrently, hence concurrent.</summary>
    public ConcurrentDictionary<string, ComputeManager> Computes { get; } = new();

    /// <summary>Each host's virt driver (the last one started for the host).</summary>
    public ConcurrentDictionary<string, IComputeDriver> Drivers { get; } = new();

    public Action<FakeDriverOptions>? ConfigureDriver { get; set; }
    public Action<QemuDriverOptions>? ConfigureQemuDriver { get; set; }
    public Action<ComputeOptions>? ConfigureCompute { get; set; }

    /// <summary>The token every agent sends to placement (set before the first agent starts).</summary>
    public void UsePlacementToken(string token)
    {
        _placementHttp.DefaultRequestHeaders.Remove("X-Auth-Token");
        _placementHttp.DefaultRequestHeaders.Add("X-Auth-Token", token);
    }

    /// <summary>Starts (or restarts) one compute agent; a restarted agent finds the guests its host kept.</summary>
    public async Task<ComputeManager> StartAsync(string host, CancellationToken ct, Action<ComputeOptions>? configure = null)
    {
        if (Computes.TryGetValue(host, out var running))
        {
            await running.StopAsync();
        }
        if (Drivers.TryRemove(host, out var previous) && previous is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync(); // QMP connections only, unless guests die with their agent (KillGuestsOnStop)
        }
        IComputeDriver driver = _options.Driver == "qemu" ? CreateQemuDriver(host) : CreateFakeDriver(host);
        Drivers[host] = driver;
        var computeOptions = new ComputeOptions
        {
            Host = host,
            ReportInterval = _options.ReportInterval,
            MaxConcurrentLiveMigrations = _options.MaxConcurrentLiveMigrations,
            PlacementUrl = new Uri(_options.PlacementUrl + "/"),
            LiveMigrationBandwidthMiBps = _options.LiveMigrationBandwidthMiBps,
            LiveMigrationPermitPostCopy = _options.LiveMigrationPermitPostCopy,
            LiveMigrationPermitAutoConverge = _options.LiveMigrationPermitAutoConverge,
            LiveMigrationTimeoutAction = _options.LiveMigrationTimeoutAction,
            LiveMigrationCompletionTimeoutSecondsPerGiB = _options.LiveMigrationCompletionTimeoutSecondsPerGiB,
            LiveMigrationPostCopyRecoveryAttempts = _options.LiveMigrationPostCopyRecoveryAttempts,
            LiveMigrationPostCopyStallSeconds = _options.LiveMigrationPostCopyStallSeconds,
            LiveMigrationParallelConnections = _options.LiveMigrationParallelConnections,
        };
        ConfigureCompute?.Invoke(computeOptions);
        configure?.Invoke(computeOptions);
        var compute = new ComputeManager(computeOptions, driver, _transport, _rpcOptions, new PlacementHttpClient(_placementHttp), _time, _loggers);
        await compute.StartAsync(ct);
        Computes[host] = compute;
        return compute;
    }

    private string InstancesPath(string host) =>
        Path.GetFullPath(Path.Combine(_options.DataDirectory, "instances", _options.SharedStorage ? "shared" : host));

    private FakeDriver CreateFakeDriver(string host)
    {
        var driverOptions = new FakeDriverOptions
        {
            HostName = host,
            InstancesPath = InstancesPath(host),
            TimeScale = _options.FakeTimeScale,
            LinkBandwidthMiBps = _options.FakeBandwidthMiBps,
        };
        ConfigureDriver?.Invoke(driverOptions);
        var hypervisor = _hypervisors.GetOrAdd(host, _ => new FakeHypervisorState());
        return new FakeDriver(driverOptions, hypervisor, _time, _loggers.CreateLogger<FakeDriver>());
    }

    /// <summary>Hosts share this machine: each has its own instances directory (or all one, for shared storage) and image cache.</summary>
    private QemuDriver CreateQemuDriver(string host)
    {
        var driverOptions = new QemuDriverOptions
        {
            HostName = host,
            InstancesPath = InstancesPath(host),
            ImagesPath = Path.GetFullPath(Path.Combine(_options.DataDirectory, "images")),
            TestGuestImageRefs = [Seed.TestImageId, QemuTestGuest.DefaultImageRef],
            TestGuestKernelPath = Path.GetFullPath(_options.TestGuestKernelPath),
            MigrationAddress = _options.MigrationAddress,
            KillGuestsOnDispose = _options.KillGuestsOnStop,
        };
        ConfigureQemuDriver?.Invoke(driverOptions);
        return new QemuDriver(driverOptions, _loggers.CreateLogger<QemuDriver>());
    }

    /// <summary>Stops every agent, then closes its driver (QEMU guests stay up unless KillGuestsOnStop).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var compute in Computes.Values)
        {
            await compute.DisposeAsync();
        }
        foreach (var driver in Drivers.Values.OfType<IAsyncDisposable>())
        {
            await driver.DisposeAsync();
        }
        Computes.Clear();
        Drivers.Clear();
        _placementHttp.Dispose();
    }
}
