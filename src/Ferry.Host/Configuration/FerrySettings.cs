using System.Globalization;
using System.Net;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Configuration;

/// <summary>
/// Every setting of every role, in the order the help lists them. A setting is read, in rising precedence, from the
/// configuration file (<c>/etc/ferry/ferry.json</c> or <c>--config</c>), the environment (<c>FERRY_</c> + key, <c>__</c>
/// between sections) and its flag; the same check runs on each, so a bad value reads the same wherever it came from.
/// </summary>
public static class FerrySettings
{
    public const string EnvironmentPrefix = "FERRY_";

    /// <summary>The configuration file read when no <c>--config</c> is given (and only if it exists).</summary>
    public const string DefaultConfigFile = "/etc/ferry/ferry.json";

    /// <summary>The APIs the api role can serve (<c>--apis</c>).</summary>
    public static readonly string[] ApiNames = ["compute", "placement", "identity", "image", "network", "volume"];

    private static readonly FerryHostOptions s_defaults = new();

    private const FerryRoles Controller = FerryRoles.Api | FerryRoles.Conductor | FerryRoles.Scheduler | FerryRoles.AllInOne;
    private const FerryRoles Agent = FerryRoles.Compute | FerryRoles.AllInOne;
    private const FerryRoles ApiOnly = FerryRoles.Api | FerryRoles.AllInOne;

    public static IReadOnlyList<FerrySetting> All { get; } =
    [
        Choice("driver", "--driver", "The virt driver of every compute host: fake (simulated guests) or qemu (a QEMU process per guest).",
            "fake", ["fake", "qemu"], Agent, (o, v) => o.Driver = v),
        Int("hosts", "--hosts", "Number of compute hosts, named compute1..computeN.", s_defaults.Hosts, 1, 10000, "N", FerryRoles.AllInOne, (o, v) => o.Hosts = v),
        Switch("sharedStorage", "--shared-storage", "All hosts share one instances directory (var/instances/shared) instead of one each.", Agent, (o, v) => o.SharedStorage = v),
        Text("dataDir", "--data-dir", "Where the database, images, instances, logs and openrc files live.", s_defaults.DataDirectory, "DIR", FerryRoles.Every,
            (o, v) => o.DataDirectory = v),
        Text("database", "--database", "The database: a SQLite file (default <data dir>/ferry.db) or a PostgreSQL connection string (Host=…;Database=…).",
            null, "DB", FerryRoles.Every & ~FerryRoles.Compute, (o, v) => o.Database = v),
        new("transport", "--transport", "The message bus between roles: inprocess (all roles in this one process) or a rabbitmq://user:pass@host:5672/vhost URL.",
            "TRANSPORT", "inprocess", FerryRoles.Running, CheckTransport, (o, v) => o.Transport = v),
        Text("controlExchange", "--control-exchange", "The RabbitMQ exchange of this deployment (oslo.messaging's control_exchange); its queues are <exchange>.<topic>, so several deployments can share one broker.",
            s_defaults.ControlExchange, "NAME", FerryRoles.Running, (o, v) => o.ControlExchange = v),
        Text("listen", "--listen", "The address the APIs listen on.", s_defaults.ListenAddress, "ADDRESS", ApiOnly, (o, v) => o.ListenAddress = v, CheckAddress),
        new("apis", "--apis", "The APIs this process serves, comma-separated: compute, placement, identity, image, network, volume (identity with keystone auth only).",
            "LIST", string.Join(',', ApiNames), FerryRoles.Api, CheckApis, (o, v) => o.Apis = new HashSet<string>(SplitList(v), StringComparer.Ordinal))
        {
            IsList = true,
        },
        Port("api:computePort", "--compute-port", "Port of the compute API (Nova v2.1).", s_defaults.ComputeApiPort, (o, v) => o.ComputeApiPort = v),
        Port("api:placementPort", "--placement-port", "Port of the placement API.", s_defaults.PlacementPort, (o, v) => o.PlacementPort = v),
        Port("api:identityPort", "--identity-port", "Port of the identity API (Keystone v3 subset; keystone auth only).", s_defaults.IdentityPort, (o, v) => o.IdentityPort = v),
        Port("api:imagePort", "--image-port", "Port of the image API (Glance v2 subset).", s_defaults.ImagePort, (o, v) => o.ImagePort = v),
        Port("api:networkPort", "--network-port", "Port of the network API (Neutron v2.0 subset).", s_defaults.NetworkPort, (o, v) => o.NetworkPort = v),
        Port("api:volumePort", "--volume-port", "Port of the volume API (Cinder v3 subset).", s_defaults.VolumePort, (o, v) => o.VolumePort = v),
        Url("api:computeUrl", "--compute-url", "The compute API's public URL (catalog; how other roles reach it), without /v2.1. Default: http://<listen>:<port>.",
            FerryRoles.Api | FerryRoles.AllInOne, (o, v) => o.ComputeApiPublicUrl = v),
        Url("api:placementUrl", "--placement-url", "The placement API's public URL (catalog; where compute agents report). Default: http://<listen>:<port>.",
            FerryRoles.Api | FerryRoles.Compute | FerryRoles.AllInOne, (o, v) => o.PlacementPublicUrl = v),
        Url("api:identityUrl", "--identity-url", "The identity API's public URL (catalog; where compute agents log in), without /v3. Default: http://<listen>:<port>.",
            FerryRoles.Api | FerryRoles.Compute | FerryRoles.AllInOne, (o, v) => o.IdentityPublicUrl = v),
        Url("api:imageUrl", "--image-url", "The image API's public URL (catalog; image links). Default: http://<listen>:<port>.",
            Controller | FerryRoles.Compute, (o, v) => o.ImagePublicUrl = v),
        Url("api:networkUrl", "--network-url", "The network API's public URL (catalog; where compute agents make and bind ports). Default: http://<listen>:<port>.",
            Controller | FerryRoles.Compute, (o, v) => o.NetworkPublicUrl = v),
        Url("api:volumeUrl", "--volume-url", "The volume API's public URL (catalog; where Nova and the clients reach volumes), without /v3. Default: http://<listen>:<port>.",
            Controller | FerryRoles.Compute, (o, v) => o.VolumePublicUrl = v),
        Choice("volume:backend", "--volume-backend", "Where volumes live: nbd (files exported over NBD by a qemu-storage-daemon on the listen address, which guests open), file (files only: for fake hosts) or auto (nbd when qemu-storage-daemon is installed).",
            "auto", ["auto", "nbd", "file"], ApiOnly, (o, v) => o.VolumeBackend = v),
        Choice("auth", "--auth", "keystone (tokens from the identity API) or noauth2 (X-Auth-Token: user:project, Nova's test convention).",
            "keystone", ["keystone", "noauth2"], ApiOnly | FerryRoles.Compute, (o, v) => o.Auth = v),
        Text("service:user", "--service-user", "The user a compute agent logs in as to reach placement (keystone auth; Nova's [placement] username).",
            s_defaults.ServiceUser, "NAME", FerryRoles.Compute, (o, v) => o.ServiceUser = v),
        Text("service:password", "--service-password", "That user's password (default: the development admin password of a new identity file).",
            null, "PASSWORD", FerryRoles.Compute, (o, v) => o.ServicePassword = v),
        Text("service:project", "--service-project", "The project the compute agent's token is scoped to.", s_defaults.ServiceProject, "NAME", FerryRoles.Compute,
            (o, v) => o.ServiceProject = v),
        Seconds("identity:tokenLifetime", "--token-lifetime", "Lifetime of an issued token, in seconds.", s_defaults.TokenLifetime.TotalSeconds, 1, ApiOnly,
            (o, v) => o.TokenLifetime = TimeSpan.FromSeconds(v)),
        Int("identity:lockoutFailureAttempts", "--lockout-failure-attempts",
            "Keystone's lockout_failure_attempts: wrong passwords in a row before an account is locked (0: never).", s_defaults.LockoutFailureAttempts, 0, 1000, "N",
            ApiOnly, (o, v) => o.LockoutFailureAttempts = v),
        Seconds("identity:lockoutDuration", "--lockout-duration", "Keystone's lockout_duration: seconds a locked account stays locked after its last failure.",
            s_defaults.LockoutDuration.TotalSeconds, 1, ApiOnly, (o, v) => o.LockoutDuration = TimeSpan.FromSeconds(v)),
        Long("image:sizeCap", "--image-size-cap", "Glance's image_size_cap: the largest image upload, in bytes.", s_defaults.ImageSizeCap, 1, "BYTES", ApiOnly,
            (o, v) => o.ImageSizeCap = v),
        Choice("logLevel", "--log-level",
            "Level of Ferry's own log lines on the console and in <data dir>/log/ferry-<utc>.log: trace, debug, information, warning, error, " +
            "critical or none. Framework categories (ASP.NET Core requests…) log warnings and above.",
            "information", ["trace", "debug", "information", "warning", "error", "critical", "none"], FerryRoles.Every,
            (o, v) => o.LogLevel = Enum.Parse<LogLevel>(v, ignoreCase: true), "LEVEL"),
        Text("controllerHost", "--controller-host", "The host name the conductor and scheduler report their service rows under.", null, "NAME",
            FerryRoles.Conductor | FerryRoles.Scheduler | FerryRoles.AllInOne, (o, v) => o.ControllerHost = v, CheckHostName),
        new("compute:host", "--host",
            "This compute agent's host name (Nova's [DEFAULT] host). With the fake driver one process may serve several hosts: " +
            $"names separated by commas and ranges such as compute[1-1000], at most {ComputeHostList.MaxHosts}.",
            "NAME", null, FerryRoles.Compute, v => ComputeHostList.Parse(v).Error,
            (o, v) => o.ComputeHost = v)
        {
            IsList = true,
        },
        Text("compute:address", "--address",
            "The address this host's live migrations, NBD and cold-migration transfers are reached at (Nova's my_ip). Default: the listen address.",
            null, "ADDRESS", Agent, (o, v) => o.ComputeAddress = v, CheckAddress),
        Text("testGuestKernel", "--test-guest-kernel", "The test guest kernel QEMU boots for the image ferry-test-guest (built by tools/test-guest/build.sh).",
            s_defaults.TestGuestKernelPath, "FILE", Agent, (o, v) => o.TestGuestKernelPath = v),
        Text("compute:bridge", "--bridge",
            "QEMU driver: the Linux bridge every guest NIC (a tap per port) joins, made when missing; \"\" gives guests no NICs.",
            s_defaults.Bridge, "NAME", Agent, (o, v) => o.Bridge = v, CheckDeviceName),
        Text("compute:bridgeAddress", "--bridge-address",
            "QEMU driver: the address (a.b.c.d/prefix) put on the bridge, by default the seeded subnet's gateway, so this machine reaches the guests; \"\" for none.",
            s_defaults.BridgeAddress, "CIDR", Agent, (o, v) => o.BridgeAddress = v, CheckInterfaceAddress),
        Switch("compute:ownNetworkNamespace", "--own-netns",
            "QEMU driver: this compute host has a network namespace of its own, so its taps get Nova's names (tap + the port id's first 11 characters).",
            Agent, (o, v) => o.OwnNetworkNamespace = v),
        Switch("compute:forceConfigDrive", "--force-config-drive",
            "Give every guest built on this host a config drive, asked for or not (Nova's force_config_drive); guests take their address from it.",
            Agent, (o, v) => o.ForceConfigDrive = v),
        Switch("killGuestsOnStop", "--kill-guests-on-stop",
            "End every guest Ferry started when Ferry stops (default: QEMU guests keep running and are re-attached at the next start).", Agent,
            (o, v) => o.KillGuestsOnStop = v),
        Long("liveMigration:bandwidth", "--lm-bandwidth", "Live-migration bandwidth limit in MiB/s (0: no limit).", s_defaults.LiveMigrationBandwidthMiBps, 0, "MIBPS", Agent,
            (o, v) => o.LiveMigrationBandwidthMiBps = v),
        Switch("liveMigration:permitPostCopy", "--lm-permit-post-copy", "Let a live migration switch to post-copy when it does not converge.", Agent,
            (o, v) => o.LiveMigrationPermitPostCopy = v),
        Switch("liveMigration:permitAutoConverge", "--lm-permit-auto-converge", "Let QEMU throttle the guest's CPUs when a live migration does not converge.", Agent,
            (o, v) => o.LiveMigrationPermitAutoConverge = v),
        Int("liveMigration:completionTimeout", "--lm-completion-timeout", "Seconds per GiB of guest memory before the timeout action is taken (0: never).",
            s_defaults.LiveMigrationCompletionTimeoutSecondsPerGiB, 0, int.MaxValue, "S", Agent, (o, v) => o.LiveMigrationCompletionTimeoutSecondsPerGiB = v),
        Choice("liveMigration:timeoutAction", "--lm-timeout-action", "What a live migration past its completion timeout does: abort or force_complete.",
            "abort", ["abort", "force_complete"], Agent,
            (o, v) => o.LiveMigrationTimeoutAction = v == "force_complete" ? CompletionTimeoutAction.ForceComplete : CompletionTimeoutAction.Abort),
        Int("liveMigration:postCopyRecoveryAttempts", "--lm-postcopy-recovery-attempts", "Resumes of a broken post-copy stream in a row before the instance goes to ERROR.",
            s_defaults.LiveMigrationPostCopyRecoveryAttempts, 0, 1000, "N", Agent, (o, v) => o.LiveMigrationPostCopyRecoveryAttempts = v),
        Int("liveMigration:postCopyStall", "--lm-postcopy-stall", "Seconds a post-copy stream may move nothing before it counts as broken.",
            s_defaults.LiveMigrationPostCopyStallSeconds, 1, 86400, "S", Agent, (o, v) => o.LiveMigrationPostCopyStallSeconds = v),
        Int("liveMigration:parallelConnections", "--lm-parallel-connections", "Memory streams (multifd) of a live migration; 1 whenever post-copy is permitted.",
            s_defaults.LiveMigrationParallelConnections, 1, 256, "N", Agent, (o, v) => o.LiveMigrationParallelConnections = v),
        Int("liveMigration:maxConcurrent", "--max-concurrent-live-migrations", "Outgoing live migrations per host at once (0: no limit).",
            s_defaults.MaxConcurrentLiveMigrations, 0, 1000, "N", Agent, (o, v) => o.MaxConcurrentLiveMigrations = v),
        Seconds("timeScale", "--time-scale", "Fake driver: real seconds per simulated second (0: moves take no real time).", s_defaults.FakeTimeScale, 0, Agent,
            (o, v) => o.FakeTimeScale = v, "X"),
        Seconds("reportInterval", "--report-interval", "Seconds between service heartbeats.", s_defaults.ReportInterval.TotalSeconds, 0.01,
            FerryRoles.Conductor | FerryRoles.Scheduler | Agent, (o, v) => o.ReportInterval = TimeSpan.FromSeconds(v)),
        Seconds("syncPowerStateInterval", "--sync-power-state-interval",
            "Seconds between a host's power-state syncs, which mark instances whose guest died stopped (Nova's sync_power_state_interval).",
            s_defaults.PowerStateSyncInterval.TotalSeconds, 1, Agent, (o, v) => o.PowerStateSyncInterval = TimeSpan.FromSeconds(v)),
        Seconds("serviceDownTime", "--service-down-time", "Seconds without a heartbeat after which a service counts as down.", s_defaults.ServiceDownTime.TotalSeconds, 0.01,
            Controller, (o, v) => o.ServiceDownTime = TimeSpan.FromSeconds(v)),
        Int("api:maxLimit", "--max-limit", "Nova's [api] max_limit: the most items one page of a compute API list returns (a larger limit is cut to it).",
            s_defaults.MaxLimit, 1, 100_000, "N", ApiOnly, (o, v) => o.MaxLimit = v),
        Switch("api:reusePort", "--reuse-port",
            "Share the API ports with other api processes on this machine (SO_REUSEPORT): the kernel spreads connections between them.",
            FerryRoles.Api, (o, v) => o.ReusePort = v),
        Text("logName", "--log-name", "The name in this process's log file name (<data dir>/log/ferry-<name>-<utc>.log). Default: the role.",
            null, "NAME", FerryRoles.Api | FerryRoles.Conductor | FerryRoles.Scheduler | FerryRoles.Compute, (o, v) => o.LogName = v, CheckHostName),
        new("metricsPort", "--metrics-port",
            "Serve GET /metrics (Prometheus text) on this port of a conductor, scheduler or compute process (API processes serve it on their " +
            "API ports); 0 picks a free port, named in the ready line. On the compute role it listens on --address. Default: none. " +
            "ferry distributed gives one to each of its conductor, scheduler and compute processes: 0 free ports, N the ports N, N+1… in start order.",
            "PORT", null, FerryRoles.Conductor | FerryRoles.Scheduler | FerryRoles.Compute | FerryRoles.Distributed,
            v => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n is < 0 or > 65535 ? $"{v} is out of range (0..65535)" : null
                : $"'{v}' is not a whole number",
            (o, v) => o.MetricsPort = int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture)),
        Int("distributed:hostsPerCompute", "--hosts-per-compute",
            "Hosts each `ferry compute` process serves (fake driver): 10,000 hosts in 10 processes of 1,000 instead of 10,000 processes.",
            s_defaults.HostsPerCompute, 1, ComputeHostList.MaxHosts, "N", FerryRoles.Distributed, (o, v) => o.HostsPerCompute = v),
        Switch("distributed:netns", "--netns",
            "Each compute host in a network namespace of its own (needs root and iproute2): a veth to a bridge of this machine, where the control plane " +
            "listens on 10.233.X.1 and the seeded subnet's gateway sits; its own address, bridge and guests. Ctrl-C removes them all.",
            FerryRoles.Distributed, (o, v) => o.Netns = v),
        Seconds("distributed:linkBandwidth", "--link-bandwidth", "With --netns: every host's link shaped to this rate in Mbit/s, each way (tc HTB at both ends; 0: unshaped).",
            0, 0, FerryRoles.Distributed, (o, v) => o.LinkBandwidthMbit = v, "MBIT"),
        Seconds("distributed:linkLatency", "--link-latency", "With --netns: every host's link delays packets this many ms, each way (the link is then two taps joined by the launcher, " +
            "which holds each frame MS ms; no netem needed): a host and the controller are 2×MS apart (round trip), two hosts 4×MS. 0: none.",
            0, 0, FerryRoles.Distributed, (o, v) => o.LinkLatencyMs = v, "MS"),
        Int("distributed:replicas", "--replicas", "Processes of each control-plane role (api, conductor, scheduler).", s_defaults.Replicas, 1, 8, "N",
            FerryRoles.Distributed, (o, v) => o.Replicas = v),
        Int("distributed:postgresPort", "--postgres-port", "Port of the PostgreSQL server it runs under <data dir>/postgres. 0 picks a free port.",
            s_defaults.PostgresPort, 0, 65535, "PORT", FerryRoles.Distributed, (o, v) => o.PostgresPort = v),
        Int("distributed:rabbitmqPort", "--rabbitmq-port", "Port of the RabbitMQ node it runs under <data dir>/rabbitmq. 0 picks a free port.",
            s_defaults.RabbitMqPort, 0, 65535, "PORT", FerryRoles.Distributed, (o, v) => o.RabbitMqPort = v),
    ];

    /// <summary>The settings of one role, in help order.</summary>
    /// <remarks>The distributed launcher takes the all-in-one's settings (it hands them to its roles); given a database or a
    /// transport it uses the operator's PostgreSQL or RabbitMQ instead of running its own.</remarks>
    public static IReadOnlyList<FerrySetting> Of(FerryRoles role) => role == FerryRoles.Distributed
        ? [.. All.Where(s => (s.Roles & (FerryRoles.AllInOne | FerryRoles.Distributed)) != 0)]
        : [.. All.Where(s => (s.Roles & role) != 0)];

    /// <summary>The setting a configuration key names (case-insensitive, as .NET configuration keys are), or null.</summary>
    public static FerrySetting? Find(string key) => All.FirstOrDefault(s => string.Equals(s.Key, key, StringComparison.OrdinalIgnoreCase));

    private static FerrySetting Text(string key, string flag, string description, string? defaultValue, string helpName, FerryRoles roles,
        Action<FerryHostOptions, string> apply, Func<string, string?>? check = null) =>
        new(key, flag, description, helpName, defaultValue, roles, check ?? (v => v.Length == 0 ? "must not be empty" : null), apply);

    private static FerrySetting Switch(string key, string flag, string description, FerryRoles roles, Action<FerryHostOptions, bool> apply) =>
        new(key, flag, description, "", null, roles,
            v => bool.TryParse(v, out _) ? null : $"'{v}' is not true or false",
            (o, v) => apply(o, bool.Parse(v)))
        { IsSwitch = true };

    private static FerrySetting Choice(string key, string flag, string description, string defaultValue, string[] choices, FerryRoles roles,
        Action<FerryHostOptions, string> apply, string? helpName = null) =>
        new(key, flag, description, helpName ?? string.Join('|', choices), defaultValue, roles,
            v => choices.Contains(v, StringComparer.Ordinal) ? null : $"'{v}' is not one of {string.Join(", ", choices)}", apply);

    private static FerrySetting Port(string key, string flag, string description, int defaultValue, Action<FerryHostOptions, int> apply) =>
        Int(key, flag, description + " 0 picks a free port.", defaultValue, 0, 65535, "PORT", ApiOnly, apply);

    private static FerrySetting Url(string key, string flag, string description, FerryRoles roles, Action<FerryHostOptions, string> apply) =>
        new(key, flag, description, "URL", null, roles,
            v => Uri.TryCreate(v, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Query.Length == 0
                ? null
                : $"'{v}' is not an http:// or https:// URL",
            (o, v) => apply(o, v.TrimEnd('/')));

    private static FerrySetting Int(string key, string flag, string description, int defaultValue, int min, int max, string helpName, FerryRoles roles,
        Action<FerryHostOptions, int> apply) =>
        new(key, flag, description, helpName, defaultValue.ToString(CultureInfo.InvariantCulture), roles,
            v => !int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? $"'{v}' is not a whole number"
                : n < min || n > max ? (max == int.MaxValue ? $"{v} is below {min}" : $"{v} is out of range ({min}..{max})")
                : null,
            (o, v) => apply(o, int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture)));

    private static FerrySetting Long(string key, string flag, string description, long defaultValue, long min, string helpName, FerryRoles roles,
        Action<FerryHostOptions, long> apply) =>
        new(key, flag, description, helpName, defaultValue.ToString(CultureInfo.InvariantCulture), roles,
            v => !long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? $"'{v}' is not a whole number"
                : n < min ? $"{v} is below {min}"
                : null,
            (o, v) => apply(o, long.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture)));

    private static FerrySetting Seconds(string key, string flag, string description, double defaultValue, double min, FerryRoles roles,
        Action<FerryHostOptions, double> apply, string helpName = "S") =>
        new(key, flag, description, helpName, FerrySetting.Invariant(defaultValue), roles,
            v => !double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || !double.IsFinite(n) ? $"'{v}' is not a number"
                : n < min || n > 1e9 ? $"{v} is below {FerrySetting.Invariant(min)}"
                : null,
            (o, v) => apply(o, double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture)));

    private static string? CheckAddress(string value) =>
        IPAddress.TryParse(value, out _) ? null : $"'{value}' is not an IP address";

    /// <summary>A Linux network device name (IFNAMSIZ), or empty for none.</summary>
    private static string? CheckDeviceName(string value) =>
        value.Length <= 15 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')
            ? null
            : $"'{value}' is not a network device name (at most 15 letters, digits, '-', '.', '_')";

    /// <summary>An IPv4 interface address with its prefix (a.b.c.d/n), or empty for none.</summary>
    private static string? CheckInterfaceAddress(string value) =>
        value.Length == 0 || value.Split('/') is [var address, var prefix] && Ferry.Core.Networking.Ipv4.TryParse(address, out _)
            && int.TryParse(prefix, NumberStyles.None, CultureInfo.InvariantCulture, out var length) && length is >= 1 and <= 32
            ? null
            : $"'{value}' is not an address with its prefix length (a.b.c.d/n)";

    private static string? CheckHostName(string value) =>
        value.Length > 0 && value.Length <= 255 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')
            ? null
            : $"'{value}' is not a host name (letters, digits, '-', '.', '_')";

    private static string? CheckApis(string value)
    {
        var names = SplitList(value);
        if (names.Count == 0)
        {
            return "names no API";
        }
        var unknown = names.FirstOrDefault(n => !ApiNames.Contains(n, StringComparer.Ordinal));
        return unknown is null ? null : $"'{unknown}' is not one of {string.Join(", ", ApiNames)}";
    }

    private static string? CheckTransport(string value)
    {
        if (value == "inprocess")
        {
            return null;
        }
        try
        {
            _ = Messaging.RabbitMqEndpoint.Parse(value);
            return null;
        }
        catch (FormatException)
        {
            return $"'{FerryInfrastructure.Redacted(value)}' is neither inprocess nor a rabbitmq://user:pass@host:port/vhost URL";
        }
    }

    private static List<string> SplitList(string value) =>
        [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
}
