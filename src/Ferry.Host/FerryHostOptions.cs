using Ferry.Virt;

namespace Ferry.Host;

/// <summary>Settings of an all-in-one Ferry (what `./ferry up` passes on its command line).</summary>
public sealed class FerryHostOptions
{
    /// <summary>Where the SQLite file and the fake hosts' instance directories live.</summary>
    public string DataDirectory { get; set; } = "var";

    public string ListenAddress { get; set; } = "127.0.0.1";
    public int ComputeApiPort { get; set; } = 8774;
    public int PlacementPort { get; set; } = 8778;
    public int IdentityPort { get; set; } = 5000;

    /// <summary>Where the token catalog says the image service (Glance v2) is.</summary>
    public int ImagePort { get; set; } = 9292;

    /// <summary>
    /// <c>noauth2</c> (X-Auth-Token: user:project; what embedded hosts and tests use unless they ask) or
    /// <c>keystone</c> (the identity service on <see cref="IdentityPort"/>; the default on the command line).
    /// </summary>
    public string Auth { get; set; } = "noauth2";

    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(1);

    public bool UsesKeystone => Auth == "keystone";

    /// <summary>The host name the conductor and scheduler report their service rows under.</summary>
    public string ControllerHost { get; set; } = Environment.MachineName;

    /// <summary>Number of fake compute hosts, named compute1..computeN.</summary>
    public int Hosts { get; set; } = 3;

    /// <summary><c>fake</c> (in-memory guests) or <c>qemu</c> (a QEMU process per guest, driven over QMP).</summary>
    public string Driver { get; set; } = "fake";

    /// <summary>All hosts share one instances directory (shared storage) instead of one each.</summary>
    public bool SharedStorage { get; set; }

    /// <summary>
    /// The test guest kernel the QEMU driver boots for the seeded <c>ferry-test-guest</c> image
    /// (built by tools/test-guest/build.sh).
    /// </summary>
    public string TestGuestKernelPath { get; set; } = Path.Combine("tools", "test-guest", "out", "ferry-test-guest.elf");

    /// <summary>
    /// Kill the QEMU guests when Ferry stops. Off for `./ferry up`: like nova-compute, a stopped agent leaves
    /// its guests running and re-attaches to them at the next start.
    /// </summary>
    public bool KillGuestsOnStop { get; set; }

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

    /// <summary>Seeds flavors and the test image on start when the catalog is empty.</summary>
    public bool Seed { get; set; } = true;

    public string DatabasePath => Path.Combine(DataDirectory, "ferry.db");

    public string ComputeApiUrl => $"http://{ListenAddress}:{ComputeApiPort}";

    public string PlacementUrl => $"http://{ListenAddress}:{PlacementPort}";

    public string IdentityUrl => $"http://{ListenAddress}:{IdentityPort}";

    public string ImageUrl => $"http://{ListenAddress}:{ImagePort}";

    /// <summary>The users, projects and password hashes (keystone mode).</summary>
    public string IdentityConfigPath => Path.Combine(DataDirectory, "identity.json");

    public static FerryHostOptions Parse(string[] args)
    {
        var options = new FerryHostOptions { Auth = "keystone" };
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--hosts": options.Hosts = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--driver": options.Driver = Next(); break;
                case "--data-dir": options.DataDirectory = Next(); break;
                case "--compute-port": options.ComputeApiPort = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--placement-port": options.PlacementPort = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--identity-port": options.IdentityPort = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--image-port": options.ImagePort = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--auth": options.Auth = Next(); break;
                case "--token-lifetime": options.TokenLifetime = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                case "--shared-storage": options.SharedStorage = true; break;
                case "--test-guest-kernel": options.TestGuestKernelPath = Next(); break;
                case "--kill-guests-on-stop": options.KillGuestsOnStop = true; break;
                case "--lm-bandwidth": options.LiveMigrationBandwidthMiBps = long.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--lm-permit-post-copy": options.LiveMigrationPermitPostCopy = true; break;
                case "--lm-permit-auto-converge": options.LiveMigrationPermitAutoConverge = true; break;
                case "--lm-completion-timeout": options.LiveMigrationCompletionTimeoutSecondsPerGiB = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--lm-postcopy-recovery-attempts": options.LiveMigrationPostCopyRecoveryAttempts = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--lm-parallel-connections": options.LiveMigrationParallelConnections = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--lm-postcopy-stall": options.LiveMigrationPostCopyStallSeconds = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--lm-timeout-action":
                    options.LiveMigrationTimeoutAction = Next() switch
                    {
                        "abort" => CompletionTimeoutAction.Abort,
                        "force_complete" => CompletionTimeoutAction.ForceComplete,
                        var other => throw new ArgumentException($"Unknown --lm-timeout-action {other}: abort or force_complete"),
                    };
                    break;
                case "--time-scale": options.FakeTimeScale = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--report-interval": options.ReportInterval = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                case "--service-down-time": options.ServiceDownTime = TimeSpan.FromSeconds(double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture)); break;
                case "--max-concurrent-live-migrations": options.MaxConcurrentLiveMigrations = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"Unknown option {args[i]}");
            }
        }
        if (options.Hosts < 1)
        {
            throw new ArgumentException("--hosts must be at least 1");
        }
        if (options.Auth is not ("keystone" or "noauth2"))
        {
            throw new ArgumentException($"Unknown auth {options.Auth}: keystone or noauth2");
        }
        if (options.Driver is not ("fake" or "qemu"))
        {
            throw new ArgumentException($"Unknown driver {options.Driver}: fake or qemu");
        }
        return options;
    }
}
