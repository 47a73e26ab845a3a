using System.Collections.Concurrent;
using Ferry.Compute;
using Ferry.Core.Identity;
using Ferry.Core.Images;
using Ferry.Core.Rpc;
using Ferry.Virt;
using Ferry.Virt.Fake;
using Ferry.Virt.Qemu;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Roles;

/// <summary>
/// The compute agents of one process (one for <c>ferry compute</c>, N for the all-in-one): each host's driver and
/// <see cref="ComputeManager"/>, started, restarted (a restarted agent finds the guests its host kept) and stopped.
/// Agents reach the control plane only through the bus and the placement and image APIs, with one Keystone session
/// for every agent of the process (Nova's [placement] service credentials), or noauth2's fixed token.
/// </summary>
public sealed class ComputeAgents : IAsyncDisposable
{
    private readonly FerryHostOptions _options;
    private readonly IRpcTransport _transport;
    private readonly RpcOptions _rpcOptions;
    private readonly HttpClient _http = new(CreateHandler());
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly ConcurrentDictionary<string, FakeHypervisorState> _hypervisors = new();

    /// <summary>
    /// Connections the agents of this process keep open to one API (placement, images, identity) at most. All agents share
    /// one handler, so 10,000 hosts of an all-in-one wait their turn for a connection instead of opening one each
    /// (two descriptors per loopback connection ran the process out of them at 20,000).
    /// </summary>
    public const int MaxConnectionsPerServer = 32;

    /// <summary>Agents started at once by <see cref="StartAllAsync"/>: more only queue on the bus and the database.</summary>
    public const int StartConcurrency = 32;

    public ComputeAgents(FerryHostOptions options, IRpcTransport transport, RpcOptions rpcOptions, TimeProvider time, ILoggerFactory loggers)
    {
        _options = options;
        _transport = transport;
        _rpcOptions = rpcOptions;
        _time = time;
        _loggers = loggers;
    }

    /// <summary>Running (or stopped) compute agents by host; agents start concurrently, hence concurrent.</summary>
    public ConcurrentDictionary<string, ComputeManager> Computes { get; } = new();

    /// <summary>Each host's virt driver (the last one started for the host).</summary>
    public ConcurrentDictionary<string, IComputeDriver> Drivers { get; } = new();

    public Action<FakeDriverOptions>? ConfigureDriver { get; set; }
    public Action<QemuDriverOptions>? ConfigureQemuDriver { get; set; }
    public Action<ComputeOptions>? ConfigureCompute { get; set; }

    /// <summary>The agents' Keystone session (keystone auth; set before the first agent starts); null under noauth2.</summary>
    public KeystoneSession? Session { get; private set; }

    /// <summary>Logs the agents in with <paramref name="credentials"/> (keystone auth): bad credentials fail here, in one line.</summary>
    public async Task LogInAsync(KeystoneCredentials credentials, CancellationToken ct)
    {
        Session = new KeystoneSession(_http, credentials, _time);
        await Session.GetTokenAsync(ct);
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
        var computeOptions = new ComputeOptions
        {
            Host = host,
            MyIp = _options.MigrationAddress,
            ReportInterval = _options.ReportInterval,
            PowerStateSyncInterval = _options.PowerStateSyncInterval,
            MaxConcurrentLiveMigrations = _options.MaxConcurrentLiveMigrations,
            ForceConfigDrive = _options.ForceConfigDrive,
            // With credentials the endpoints come from the token's catalog, as in a Nova deployment.
            PlacementUrl = Session is null ? new Uri(_options.PlacementUrl + "/") : null,
            ImageUrl = Session is null ? new Uri(_options.ImageUrl + "/") : null,
            NetworkUrl = Session is null ? new Uri(_options.NetworkUrl + "/") : null,
            VolumeUrl = Session is null ? new Uri(_options.VolumeUrl + "/v3/") : null,
            ServiceCredentials = Session?.Credentials,
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
        // Every agent of this process shares the one login, unless it was given credentials of its own.
        var clients = ServiceClients.Create(computeOptions, _http, _time,
            computeOptions.ServiceCredentials is { } own && own == Session?.Credentials ? Session : null);
        // The driver binds what the agent advertises: its my_ip and live_migration_inbound_addr.
        IComputeDriver driver = _options.Driver == "qemu" ? CreateQemuDriver(host, computeOptions, clients.Images) : CreateFakeDriver(host, computeOptions);
        Drivers[host] = driver;
        var compute = new ComputeManager(computeOptions, driver, _transport, _rpcOptions, clients.Placement, _time, _loggers, clients.Network, clients.Volume);
        await compute.StartAsync(ct);
        Computes[host] = compute;
        return compute;
    }

    /// <summary>Starts every agent of <paramref name="hosts"/>, <see cref="StartConcurrency"/> at a time.</summary>
    public Task StartAllAsync(IEnumerable<string> hosts, CancellationToken ct) =>
        Parallel.ForEachAsync(hosts, new ParallelOptions { MaxDegreeOfParallelism = StartConcurrency, CancellationToken = ct },
            async (host, token) => await StartAsync(host, token));

    /// <summary>The one handler behind every agent's placement, image and identity calls (see <see cref="MaxConnectionsPerServer"/>).</summary>
    internal static SocketsHttpHandler CreateHandler() => new()
    {
        MaxConnectionsPerServer = MaxConnectionsPerServer,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
    };

    private string InstancesPath(string host) =>
        Path.GetFullPath(Path.Combine(_options.DataDirectory, "instances", _options.SharedStorage ? "shared" : host));

    private FakeDriver CreateFakeDriver(string host, ComputeOptions compute)
    {
        var driverOptions = new FakeDriverOptions
        {
            HostName = host,
            MigrationAddress = compute.InboundAddress,
            HostAddress = compute.MyIp,
            InstancesPath = InstancesPath(host),
            TimeScale = _options.FakeTimeScale,
            LinkBandwidthMiBps = _options.FakeBandwidthMiBps,
        };
        ConfigureDriver?.Invoke(driverOptions);
        var hypervisor = _hypervisors.GetOrAdd(host, _ => new FakeHypervisorState());
        return new FakeDriver(driverOptions, hypervisor, _time, _loggers.CreateLogger<FakeDriver>());
    }

    /// <summary>Hosts share this machine: each has its own instances directory (or all one, for shared storage) and image cache.</summary>
    private QemuDriver CreateQemuDriver(string host, ComputeOptions compute, IImageService images)
    {
        var driverOptions = new QemuDriverOptions
        {
            HostName = host,
            InstancesPath = InstancesPath(host),
            TestGuestImageRefs = [Seed.TestImageId, QemuTestGuest.DefaultImageRef],
            TestGuestKernelPath = Path.GetFullPath(_options.TestGuestKernelPath),
            MigrationAddress = compute.InboundAddress,
            HostAddress = compute.MyIp,
            KillGuestsOnDispose = _options.KillGuestsOnStop,
            Bridge = string.IsNullOrEmpty(_options.Bridge) ? null : _options.Bridge,
            BridgeAddress = string.IsNullOrEmpty(_options.BridgeAddress) ? null : _options.BridgeAddress,
            OwnNetworkNamespace = _options.OwnNetworkNamespace,
        };
        ConfigureQemuDriver?.Invoke(driverOptions);
        // Images reach the host through the image API with the agent's token, never the controller's directory.
        return new QemuDriver(driverOptions, _loggers.CreateLogger<QemuDriver>(), images);
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
        _http.Dispose();
    }
}
