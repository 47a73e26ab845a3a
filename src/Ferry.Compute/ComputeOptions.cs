using Ferry.Core.Identity;
using Ferry.Virt;

namespace Ferry.Compute;

/// <summary>One compute agent's settings (Nova's [DEFAULT] and [libvirt] live_migration_* options).</summary>
public sealed class ComputeOptions
{
    public required string Host { get; set; }

    /// <summary>
    /// Nova's my_ip: this host's address on the management network. The cold-migration transfer server binds it,
    /// migrations record it as their dest_host, and the compute node reports it as host_ip.
    /// </summary>
    public string MyIp { get; set; } = "127.0.0.1";

    /// <summary>
    /// Nova's [libvirt] live_migration_inbound_addr: where this host, as a live migration's destination, listens for the
    /// memory stream and the NBD server of a block migration (null: <see cref="MyIp"/>). The destination hands it to the
    /// source in the migrate data; the source never assumes it.
    /// </summary>
    public string? LiveMigrationInboundAddress { get; set; }

    /// <summary><see cref="LiveMigrationInboundAddress"/>, or <see cref="MyIp"/> when it is not set.</summary>
    public string InboundAddress => LiveMigrationInboundAddress ?? MyIp;

    /// <summary>Heartbeat period (Nova: report_interval, 10 s).</summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Outgoing live migrations run at once from this host; more wait as `queued` (Nova default 1; 0 = unlimited).</summary>
    public int MaxConcurrentLiveMigrations { get; set; } = 1;

    /// <summary>
    /// Nova's force_config_drive: every guest built here gets a config drive, asked for or not, and keeps it through every
    /// move (the instance's config_drive becomes True). A guest without DHCP takes its address from the drive only.
    /// </summary>
    public bool ForceConfigDrive { get; set; }

    public double CpuAllocationRatio { get; set; } = 4.0;
    public double RamAllocationRatio { get; set; } = 1.0;
    public double DiskAllocationRatio { get; set; } = 1.0;
    public int ReservedHostMemoryMb { get; set; }

    public long LiveMigrationBandwidthMiBps { get; set; }
    public int LiveMigrationDowntimeMs { get; set; } = 500;
    public int LiveMigrationDowntimeSteps { get; set; } = 10;
    public int LiveMigrationDowntimeDelaySecondsPerGiB { get; set; } = 75;
    public int LiveMigrationCompletionTimeoutSecondsPerGiB { get; set; } = 800;
    public CompletionTimeoutAction LiveMigrationTimeoutAction { get; set; } = CompletionTimeoutAction.Abort;
    public bool LiveMigrationPermitPostCopy { get; set; }
    public bool LiveMigrationPermitAutoConverge { get; set; }
    /// <summary>
    /// Nova's live_migration_parallel_connections (2026.1): above 1, the memory moves over that many streams (multifd).
    /// Default 1, as in Nova: under a bandwidth cap extra streams gain nothing, uncapped they need free cores
    /// (BENCHMARKS.md, "Parallel connections": 0.26–0.75× the time on a quiet 2-core machine, no dependable gain on a busy one).
    /// Dropped for a migration that may switch to post-copy (QEMU before 10.1 cannot combine them).
    /// </summary>
    public int LiveMigrationParallelConnections { get; set; } = 1;
    /// <summary>Resumes of a broken post-copy stream in a row before the instance goes to ERROR (no Nova equivalent: Nova gives up at once).</summary>
    public int LiveMigrationPostCopyRecoveryAttempts { get; set; } = 5;
    /// <summary>Seconds without a byte moved before a post-copy stream counts as broken.</summary>
    public int LiveMigrationPostCopyStallSeconds { get; set; } = 10;

    /// <summary>
    /// How often ACTIVE instances whose guest died are marked stopped, also at start (Nova's sync_power_state_interval); a
    /// guest the driver reports stopped (<see cref="Virt.IComputeDriver.GuestStopped"/>) is synced at once.
    /// </summary>
    public TimeSpan PowerStateSyncInterval { get; set; } = TimeSpan.FromSeconds(600);

    /// <summary>Least time between two progress writes of one migration (Nova: live_migration_monitor_interval).</summary>
    public TimeSpan MigrationProgressInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Placement API the agent reports inventory to and moves allocations with (Nova's [placement] endpoint_override);
    /// null: the <c>placement</c> endpoint of the service token's catalog.
    /// </summary>
    public Uri? PlacementUrl { get; set; }

    /// <summary>The image API images are downloaded from (Nova's [glance] endpoint_override); null: the token catalog's <c>image</c> endpoint.</summary>
    public Uri? ImageUrl { get; set; }

    /// <summary>
    /// The network API ports are made and bound with (Nova's [neutron] endpoint_override); null: the token catalog's
    /// <c>network</c> endpoint, or, without credentials, no network service (servers get no NICs).
    /// </summary>
    public Uri? NetworkUrl { get; set; }
    /// <summary>The block storage service (Cinder v3) under noauth2; with credentials, the catalog's volumev3 endpoint.</summary>
    public Uri? VolumeUrl { get; set; }

    /// <summary>
    /// The agent's Keystone service credentials for placement and the image API (Nova's [placement] and [glance]
    /// keystoneauth options). Null: the identity service is off (noauth2), and <see cref="NoAuthToken"/> is sent to
    /// <see cref="PlacementUrl"/> and <see cref="ImageUrl"/>, which must then be set.
    /// </summary>
    public KeystoneCredentials? ServiceCredentials { get; set; }

    /// <summary>The token of the noauth2 convention (<c>user:project</c>) when <see cref="ServiceCredentials"/> is null.</summary>
    public string NoAuthToken { get; set; } = "admin:admin";

    /// <summary>Throws an <see cref="ArgumentException"/> naming the setting when an address is not an IP address.</summary>
    public void Validate()
    {
        if (!System.Net.IPAddress.TryParse(MyIp, out _))
        {
            throw new ArgumentException($"my_ip: '{MyIp}' is not an IP address.", nameof(MyIp));
        }
        if (LiveMigrationInboundAddress is { } inbound && !System.Net.IPAddress.TryParse(inbound, out _))
        {
            throw new ArgumentException($"live_migration_inbound_addr: '{inbound}' is not an IP address.", nameof(LiveMigrationInboundAddress));
        }
    }
}
