using Ferry.ControlPlane.Images;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Host;

/// <summary>
/// Settings of every Ferry role (what `./ferry up` and `ferry &lt;role&gt;` take from the configuration file, the
/// environment and their command line; see <see cref="Configuration.FerrySettings"/>).
/// </summary>
public sealed class FerryHostOptions
{
    /// <summary>Where the SQLite file and the fake hosts' instance directories live.</summary>
    public string DataDirectory { get; set; } = "var";

    /// <summary>
    /// The database: null for the SQLite file under the data directory, else a SQLite path or a PostgreSQL connection
    /// string (passed through to <see cref="FerryInfrastructure.OpenDatabase"/>).
    /// </summary>
    public string? Database { get; set; }

    /// <summary><c>inprocess</c> (every role in this process) or a <c>rabbitmq://</c> URL (roles in separate processes).</summary>
    public string Transport { get; set; } = "inprocess";

    /// <summary>The RabbitMQ exchange (oslo.messaging's control_exchange, "nova" in Nova); queues are named after it.</summary>
    public string ControlExchange { get; set; } = "ferry";

    public bool UsesInProcessTransport => Transport == "inprocess" && RabbitMq is null;

    /// <summary>The APIs the api role serves (all four by default).</summary>
    public IReadOnlySet<string> Apis { get; set; } = new HashSet<string>(Configuration.FerrySettings.ApiNames);

    public bool Serves(string api) => Apis.Contains(api);

    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>Public URLs the APIs advertise (catalog) and other roles reach them at; null: http://listen:port.</summary>
    public string? ComputeApiPublicUrl { get; set; }
    public string? PlacementPublicUrl { get; set; }
    public string? IdentityPublicUrl { get; set; }
    public string? ImagePublicUrl { get; set; }
    public string? NetworkPublicUrl { get; set; }
    public string? VolumePublicUrl { get; set; }

    /// <summary>The compute role's host name (<c>ferry compute --host NAME</c>).</summary>
    public string? ComputeHost { get; set; }

    /// <summary>
    /// The hosts <see cref="ComputeHost"/> names (one, or several for a fake-driver process; see <see cref="Configuration.ComputeHostList"/>);
    /// none when it names none or is not a host list. Read from it, so options built in code (tests) need only the name.
    /// </summary>
    public IReadOnlyList<string> ComputeHosts => ComputeHost is null ? [] : Configuration.ComputeHostList.Parse(ComputeHost).Hosts;

    /// <summary>The address a compute host's migrations are reached at (Nova's my_ip); null: <see cref="ListenAddress"/>.</summary>
    public string? ComputeAddress { get; set; }

    public string MigrationAddress => ComputeAddress ?? ListenAddress;

    /// <summary>The credentials a separate compute agent logs in with to reach placement (keystone auth).</summary>
    public string ServiceUser { get; set; } = "admin";
    public string? ServicePassword { get; set; }
    public string ServiceProject { get; set; } = "admin";
    public int ComputeApiPort { get; set; } = 8774;
    public int PlacementPort { get; set; } = 8778;
    public int IdentityPort { get; set; } = 5000;

    /// <summary>Where the token catalog says the image service (Glance v2) is.</summary>
    public int ImagePort { get; set; } = 9292;

    /// <summary>Where the token catalog says the network service (Neutron v2.0) is.</summary>
    public int NetworkPort { get; set; } = 9696;

    /// <summary>Where the token catalog says the volume service (Cinder v3 subset) is.</summary>
    public int VolumePort { get; set; } = 8776;

    /// <summary>
    /// <c>noauth2</c> (X-Auth-Token: user:project; what embedded hosts and tests use unless they ask) or
    /// <c>keystone</c> (the identity service on <see cref="IdentityPort"/>; the default on the command line).
    /// </summary>
    public string Auth { get; set; } = "noauth2";

    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Keystone's <c>lockout_failure_attempts</c>: wrong passwords in a row before an account is locked (0: never).</summary>
    public int LockoutFailureAttempts { get; set; } = 6;

    /// <summary>Keystone's <c>lockout_duration</c>: how long a locked account stays locked after its last failure.</summary>
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromSeconds(1800);

    /// <summary>Glance's <c>image_size_cap</c>: the largest image upload in bytes (1 TiB by default).</summary>
    public long ImageSizeCap { get; set; } = ImageServiceOptions.DefaultImageSizeCap;

    public bool UsesKeystone => Auth == "keystone";

    /// <summary>The host name the conductor and scheduler report their service rows under.</summary>
    public string ControllerHost { get; set; } = Environment.MachineName;

    /// <summary>RabbitMQ with settings of its own (tests: an exchange per fixture, short recovery); else <see cref="Transport"/> decides.</summary>
    public Messaging.RabbitMqOptions? RabbitMq { get; set; }

    /// <summary>
    /// How long a call or cast waits for a RabbitMQ broker that is down or reconnecting before it fails (a restart takes
    /// about 7 s here): long enough that a broker restart delays a move rather than rolling it back.
    /// </summary>
    public TimeSpan TransportUnavailableWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long an operation waits for a PostgreSQL server that is down or restarting before it fails (503 in an API's
    /// shape): long enough that a conductor serving a compute agent's call rides out a restart.
    /// </summary>
    public TimeSpan DatabaseUnavailableWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// An api process on its own (`ferry api`) waits this long instead, for the broker and for the database: its caller
    /// is a client holding an HTTP request open, who should get a 503 soon rather than wait for a restart. The
    /// all-in-one keeps the longer waits, since its conductor and agents share the api's transport and database.
    /// </summary>
    public TimeSpan ApiUnavailableWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The api role shares its ports with other api processes (SO_REUSEPORT), as the distributed launcher's replicas do.</summary>
    public bool ReusePort { get; set; }

    /// <summary>The name in a role's log file name; null: the role's own (api, conductor, compute-&lt;host&gt;…).</summary>
    public string? LogName { get; set; }

    /// <summary>`ferry distributed`: processes of each control-plane role.</summary>
    public int Replicas { get; set; } = 2;

    /// <summary>`ferry distributed --netns`: each compute host in its own network namespace (the lab).</summary>
    public bool Netns { get; set; }

    /// <summary>With <see cref="Netns"/>: every host link's rate in Mbit/s (0: unshaped).</summary>
    public double LinkBandwidthMbit { get; set; }

    /// <summary>With <see cref="Netns"/>: every host link's one-way delay in ms (0: none).</summary>
    public double LinkLatencyMs { get; set; }

    /// <summary>`ferry distributed`: hosts each compute process serves (fake driver; 1: one process per host).</summary>
    public int HostsPerCompute { get; set; } = 1;

    /// <summary>`ferry distributed`: the PostgreSQL port (0: a free one).</summary>
    public int PostgresPort { get; set; }

    /// <summary>`ferry distributed`: the RabbitMQ port (0: a free one).</summary>
    public int RabbitMqPort { get; set; }

    /// <summary>Number of fake compute hosts, named compute1..computeN.</summary>
    public int Hosts { get; set; } = 3;

    /// <summary>Where volumes live: <c>nbd</c> (exported by a qemu-storage-daemon), <c>file</c> or <c>auto</c> (nbd when the daemon is installed).</summary>
    public string VolumeBackend { get; set; } = "auto";

    /// <summary><c>fake</c> (in-memory guests) or <c>qemu</c> (a QEMU process per guest, driven over QMP).</summary>
    public string Driver { get; set; } = "fake";

    /// <summary>All hosts share one instances directory (shared storage) instead of one each.</summary>
    public bool SharedStorage { get; set; }

    /// <summary>
    /// The test guest kernel the QEMU driver boots for the seeded <c>ferry-test-guest</c> image
    /// (built by tools/test-guest/build.sh).
    /// </summary>
    public string TestGuestKernelPath { get; set; } = Path.Combine("tools", "test-guest", "out", "ferry-test-guest.elf");

    /// <summary>QEMU driver: the Linux bridge guests' NICs join on every host (null: guests get no NICs).</summary>
    public string? Bridge { get; set; } = "ferrybr0";

    /// <summary>QEMU driver: the address (a.b.c.d/prefix) a host puts on its bridge, by default the seeded subnet's gateway, so this machine reaches its guests (null: none).</summary>
    public string? BridgeAddress { get; set; } = "192.168.233.1/24";

    /// <summary>QEMU driver: this compute host runs in a network namespace of its own (the lab), so its taps get Nova's names.</summary>
    public bool OwnNetworkNamespace { get; set; }

    /// <summary>
    /// Kill the QEMU guests when Ferry stops. Off for `./ferry up`: like nova-compute, a stopped agent leaves
    /// its guests running and re-attaches to them at the next start.
    /// </summary>
    public bool KillGuestsOnStop { get; set; }

    /// <inheritdoc cref="Compute.ComputeOptions.ForceConfigDrive"/>
    public bool ForceConfigDrive { get; set; }

    /// <summary>The live-migration policy of every compute agent (Nova's [libvirt] live_migration_* options).</summary>
    public long LiveMigrationBandwidthMiBps { get; set; }
    public bool LiveMigrationPermitPostCopy { get; set; }
    public bool LiveMigrationPermitAutoConverge { get; set; }
    public CompletionTimeoutAction LiveMigrationTimeoutAction { get; set; } = CompletionTimeoutAction.Abort;
    public int LiveMigrationCompletionTimeoutSecondsPerGiB { get; set; } = 800;
    public int LiveMigrationPostCopyRecoveryAttempts { get; set; } = 5;
    public int LiveMigrationPostCopyStallSeconds { get; set; } = 10;
    public int LiveMigrationParallelConnections { get; set; } = 1;

    /// <summary>Real seconds per simulated second in the fake driver (0 = migrations take no real time).</summary>
    public double FakeTimeScale { get; set; } = 1.0;

    /// <summary>Fake link bandwidth in MiB/s (0 = zero-cost copy).</summary>
    public long FakeBandwidthMiBps { get; set; } = 1000;

    public int MaxConcurrentLiveMigrations { get; set; } = 1;

    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan ServiceDownTime { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Between a host's power-state syncs (Nova's default): a guest that stops by itself is seen at once through its driver's
    /// event; this sync is the net under a missed event. At 10,000 hosts a minute's interval was 167 instance reads a second.
    /// </summary>
    public TimeSpan PowerStateSyncInterval { get; set; } = TimeSpan.FromSeconds(600);

    /// <summary>Nova's [api] max_limit: the most items one page of a compute API list returns.</summary>
    public int MaxLimit { get; set; } = 1000;

    /// <summary>The level of Ferry's own log categories; framework categories (Microsoft.*, System.*) log warnings and above.</summary>
    public LogLevel LogLevel { get; set; } = LogLevel.Information;

    /// <summary>A file that gets every log line besides the console (`./ferry up`: var/log/ferry-&lt;utc&gt;.log); null for none.</summary>
    public string? LogFilePath { get; set; }

    /// <summary>Seeds flavors and the test image on start when the catalog is empty.</summary>
    public bool Seed { get; set; } = true;

    /// <summary>The SQLite file under the data directory (the default database).</summary>
    /// <summary>Collects metrics and serves them on <c>/metrics</c> (off only to measure what they cost).</summary>
    public bool Metrics { get; set; } = true;

    /// <summary>
    /// A port of its own for <c>GET /metrics</c> in a process without an API (conductor, scheduler, compute); 0 picks a free
    /// one, null serves none. API processes serve <c>/metrics</c> on their API ports instead.
    /// </summary>
    public int? MetricsPort { get; set; }

    public string DatabasePath => Path.Combine(DataDirectory, "ferry.db");

    /// <summary>What <see cref="FerryInfrastructure.OpenDatabase"/> opens: <see cref="Database"/>, else <see cref="DatabasePath"/>.</summary>
    public string DatabaseSetting => Database ?? DatabasePath;

    public string ComputeApiUrl => ComputeApiPublicUrl ?? $"http://{ListenAddress}:{ComputeApiPort}";

    public string PlacementUrl => PlacementPublicUrl ?? $"http://{ListenAddress}:{PlacementPort}";

    public string IdentityUrl => IdentityPublicUrl ?? $"http://{ListenAddress}:{IdentityPort}";

    public string ImageUrl => ImagePublicUrl ?? $"http://{ListenAddress}:{ImagePort}";

    public string NetworkUrl => NetworkPublicUrl ?? $"http://{ListenAddress}:{NetworkPort}";

    /// <summary>The volume API's base URL, without <c>/v3</c>.</summary>
    public string VolumeUrl => VolumePublicUrl ?? $"http://{ListenAddress}:{VolumePort}";

    /// <summary>The users, projects and password hashes (keystone mode).</summary>
    public string IdentityConfigPath => Path.Combine(DataDirectory, "identity.json");

    /// <summary>
    /// The options of a `./ferry up` command line alone (no file, no environment); a bad value throws an
    /// <see cref="ArgumentException"/> whose message names the flag.
    /// </summary>
    public static FerryHostOptions Parse(string[] args) => FerryCommandLine.Bind(FerryCommandLine.Parse(args));
}
