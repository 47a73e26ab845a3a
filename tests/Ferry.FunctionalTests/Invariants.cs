using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Virt;
using Ferry.Virt.Fake;
using Ferry.Virt.Qemu;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests;

/// <summary>
/// What must hold after every test, once the system is quiet: no task_state left, every migration
/// final (or legitimately holding: `finished` awaiting confirm, `done` awaiting the source's return),
/// per provider placement usage equal to what the instances and held migrations account for, and
/// each active instance's guest running on exactly one live host, and on disk each host's instance
/// directories and guest definitions (fake and QEMU alike) exactly those the database places there.
/// </summary>
public static class Invariants
{
    public static async Task AssertQuietAndConsistentAsync(AllInOne ferry, TimeSpan? timeout = null)
    {
        var services = ferry.Services;
        var instances = services.GetRequiredService<InstanceStore>();
        var migrations = services.GetRequiredService<MigrationStore>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var busy = instances.List().Where(i => i.TaskState is not null).Select(i => $"{i.Uuid} task_state {i.TaskState}")
                .Concat(migrations.ListUnfinished().Where(m => m.Status is not (MigrationStatus.Finished or MigrationStatus.Done))
                    .Select(m => $"migration {m.Id} {m.MigrationType} {m.Status}"))
                .ToList();
            if (busy.Count == 0)
            {
                break;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("Not quiet after the test: " + string.Join("; ", busy));
            }
            await Task.Delay(20);
        }
        AssertPlacementMatches(ferry);
        AssertOneRunningCopy(ferry);
        AssertGuestsMatch(ferry);
        AssertFilesMatch(ferry);
        await AssertPortsMatchAsync(ferry);
        await AssertVolumesMatchAsync(ferry);
    }

    /// <summary>
    /// Every volume attachment is a server's, connected (if at all) from the host that runs it, and in that server's
    /// mappings; every mapping's volume is in-use through it; a host holds a volume connection only for a server it runs;
    /// the backend exports no volume that does not exist.
    /// </summary>
    public static async Task AssertVolumesMatchAsync(AllInOne ferry)
    {
        var instances = ferry.Services.GetRequiredService<InstanceStore>();
        var store = ferry.Services.GetRequiredService<VolumeStore>();
        var attachments = await store.ListAttachmentsAsync(new AttachmentQuery(), CancellationToken.None);
        var volumes = await store.ListVolumesAsync(null, CancellationToken.None);
        var problems = new List<string>();
        foreach (var attachment in attachments)
        {
            var owner = instances.Find(attachment.InstanceUuid);
            if (owner is null)
            {
                problems.Add($"attachment {attachment.Id} of volume {attachment.VolumeId} belongs to {attachment.InstanceUuid}, which is no server");
                continue;
            }
            if (owner.BlockDevices.All(b => b.AttachmentId != attachment.Id))
            {
                problems.Add($"attachment {attachment.Id} of volume {attachment.VolumeId} is in none of {owner.Uuid}'s mappings");
            }
            if (attachment.AttachedHost is { } host && host != owner.Host)
            {
                problems.Add($"attachment {attachment.Id} of volume {attachment.VolumeId} connects {host}, but {owner.Uuid} runs on {owner.Host}");
            }
        }
        foreach (var instance in instances.List().Where(i => i.BlockDevices.Count > 0))
        {
            foreach (var mapping in instance.BlockDevices)
            {
                var attachment = attachments.FirstOrDefault(a => a.Id == mapping.AttachmentId);
                var volume = volumes.FirstOrDefault(v => v.Id == mapping.VolumeId);
                if (attachment?.AttachStatus != "attached" || volume?.Status != "in-use")
                {
                    problems.Add($"{instance.Uuid}'s volume {mapping.VolumeId} is {volume?.Status ?? "gone"} with attachment {mapping.AttachmentId} {attachment?.AttachStatus ?? "gone"}");
                }
            }
        }
        foreach (var (host, compute) in ferry.Computes)
        {
            if (compute.Driver is not FakeDriver fake || !compute.IsRunning)
            {
                continue;
            }
            foreach (var connection in fake.VolumeConnections())
            {
                if (instances.Find(connection.GuestUuid) is not { } owner || owner.Host != host || owner.BlockDevices.All(b => b.VolumeId != connection.VolumeId))
                {
                    problems.Add($"{host} holds a connection to volume {connection.VolumeId} for {connection.GuestUuid}, which has no such volume on {host}");
                }
            }
        }
        var exported = await ferry.Services.GetRequiredService<global::Ferry.Core.Volumes.IVolumeBackend>().ListExportsAsync(CancellationToken.None);
        foreach (var id in exported.Where(id => volumes.All(v => v.Id != id)))
        {
            problems.Add($"volume {id} is exported but does not exist");
        }
        Assert.True(problems.Count == 0, "Volumes out of step with their servers: " + string.Join("; ", problems));
    }

    /// <summary>
    /// Every server's port is bound (actively, and only) to the host that runs the server, and every port a server
    /// owns is in its info cache: no binding left on a host the guest left, no port left by a deleted server.
    /// </summary>
    public static async Task AssertPortsMatchAsync(AllInOne ferry)
    {
        var instances = ferry.Services.GetRequiredService<InstanceStore>();
        var ports = await ferry.Services.GetRequiredService<NetworkStore>().ListPortsAsync(new PortQuery(), CancellationToken.None);
        var problems = new List<string>();
        foreach (var port in ports.Where(p => p.Port.DeviceOwner.StartsWith("compute:", StringComparison.Ordinal)))
        {
            var owner = instances.Find(port.Port.DeviceId);
            if (owner is null)
            {
                problems.Add($"port {port.Port.Id} belongs to {port.Port.DeviceId}, which is no server");
                continue;
            }
            if (port.Bindings.Count != 1 || port.ActiveBinding?.Host != owner.Host)
            {
                problems.Add($"port {port.Port.Id} of {owner.Uuid} (on {owner.Host}) has bindings {string.Join(", ", port.Bindings.Select(b => $"{b.Host} {b.Status}"))}");
            }
            if (owner.NetworkInfo.All(v => v.Id != port.Port.Id))
            {
                problems.Add($"port {port.Port.Id} of {owner.Uuid} is not in its network info");
            }
            if (owner.Host is { } runsOn && ferry.Computes.TryGetValue(runsOn, out var agent) && agent.IsRunning && agent.Driver is FakeDriver driver
                && driver.GetGuest(owner.Uuid) is not null && driver.TapDevices().All(t => t.PortId != port.Port.Id))
            {
                problems.Add($"port {port.Port.Id} of {owner.Uuid} is bound to {runsOn}, which has no tap device for it");
            }
        }
        foreach (var instance in instances.List().Where(i => i.NetworkInfo.Count > 0))
        {
            foreach (var vif in instance.NetworkInfo.Where(v => ports.All(p => p.Port.Id != v.Id || p.Port.DeviceId != instance.Uuid)))
            {
                problems.Add($"{instance.Uuid}'s port {vif.Id} is gone or owned by another device");
            }
        }
        foreach (var (host, compute) in ferry.Computes)
        {
            if (compute.Driver is not FakeDriver fake || !compute.IsRunning)
            {
                continue;
            }
            foreach (var tap in fake.TapDevices())
            {
                // A tap device on a host is there for a port bound to that host, and for no other.
                if (ports.FirstOrDefault(p => p.Port.Id == tap.PortId) is not { } port || port.ActiveBinding?.Host != host || port.Port.MacAddress != tap.MacAddress)
                {
                    problems.Add($"tap {tap.Name} on {host} (guest {tap.GuestUuid}) has no port bound to {host}");
                }
            }
        }
        foreach (var (host, compute) in ferry.Computes)
        {
            if (compute.Driver is not QemuDriver qemu || !compute.IsRunning)
            {
                continue;
            }
            foreach (var tap in await qemu.GuestTapsAsync(CancellationToken.None))
            {
                if (tap.PortId is null)
                {
                    problems.Add($"tap {tap.Name} on {host} serves no guest of {host}");
                }
                else if (!tap.Exists || tap.Bridge != qemu.Options.Bridge)
                {
                    problems.Add($"guest {tap.GuestUuid} on {host} has no tap {tap.Name} on {qemu.Options.Bridge} for port {tap.PortId} (exists: {tap.Exists}, on {tap.Bridge ?? "no bridge"})");
                }
                else if (ports.FirstOrDefault(p => p.Port.Id == tap.PortId) is not { } port || port.ActiveBinding?.Host != host || port.Port.MacAddress != tap.MacAddress)
                {
                    problems.Add($"tap {tap.Name} on {host} (guest {tap.GuestUuid}) has no port bound to {host}");
                }
            }
        }
        Assert.True(problems.Count == 0, "Ports out of step with their servers: " + string.Join("; ", problems));
    }

    public static void AssertPlacementMatches(AllInOne ferry)
    {
        var services = ferry.Services;
        var placement = services.GetRequiredService<IPlacementService>();
        var nodes = services.GetRequiredService<ComputeNodeStore>().List();
        var instances = services.GetRequiredService<InstanceStore>().List();
        var catalog = services.GetRequiredService<CatalogStore>().ListFlavors().ToDictionary(f => f.InternalId);
        var migrationStore = services.GetRequiredService<MigrationStore>();
        // `finished` resizes and `done` evacuations still hold their source host.
        var holding = migrationStore.ListUnfinished().Concat(migrationStore.List(new MigrationFilter(Status: MigrationStatus.Done))).ToList();
        var byHost = instances.ToLookup(i => i.Host ?? ""); // by host once: 2,000 hosts × 20,000 instances in the scale test
        foreach (var node in nodes)
        {
            var expected = new Dictionary<string, long> { ["VCPU"] = 0, ["MEMORY_MB"] = 0, ["DISK_GB"] = 0 };
            void Add(Flavor f, bool volumeBacked)
            {
                expected["VCPU"] += f.Vcpus;
                expected["MEMORY_MB"] += f.MemoryMb;
                expected["DISK_GB"] += f.LocalDiskGb(volumeBacked);
            }
            foreach (var instance in byHost[node.Host])
            {
                Add(instance.Flavor, instance.VolumeBacked);
            }
            foreach (var m in holding.Where(m => m.SourceCompute == node.Host))
            {
                if (m.Status == MigrationStatus.Finished && m.OldInstanceTypeId is { } old)
                {
                    Add(catalog[old], instances.FirstOrDefault(i => i.Uuid == m.InstanceUuid)?.VolumeBacked ?? false);
                }
                if (m.Status == MigrationStatus.Done && instances.FirstOrDefault(i => i.Uuid == m.InstanceUuid) is { } evacuated)
                {
                    Add(evacuated.Flavor, evacuated.VolumeBacked);
                }
            }
            var actual = placement.GetProviderUsages(node.Uuid);
            foreach (var (rc, amount) in expected)
            {
                Assert.True(actual.GetValueOrDefault(rc) == amount,
                    $"{node.Host} {rc}: placement says {actual.GetValueOrDefault(rc)}, instances and migrations hold {amount}");
            }
        }
    }

    public static void AssertOneRunningCopy(AllInOne ferry)
    {
        var instances = ferry.Services.GetRequiredService<InstanceStore>().List();
        var live = ferry.Computes.Values.Where(c => c.IsRunning).ToList();
        // Each live host's running guests, read once (ListGuests holds what GetGuest finds), not each host asked per instance.
        var runningOn = live.SelectMany(c => c.Driver.ListGuests().Where(g => g.PowerState == Virt.GuestPowerState.Running).Select(g => (g.Uuid, c.Host)))
            .ToLookup(g => g.Uuid, g => g.Host);
        foreach (var instance in instances.Where(i => i.VmState == VmState.Active))
        {
            var running = runningOn[instance.Uuid].ToList();
            var hostAlive = live.Any(c => c.Host == instance.Host);
            if (hostAlive)
            {
                Assert.True(running.SequenceEqual([instance.Host!]),
                    $"Instance {instance.Uuid} on {instance.Host} runs on [{string.Join(", ", running)}]");
            }
            else
            {
                Assert.True(running.Count == 0, $"Instance {instance.Uuid} of a dead host runs on [{string.Join(", ", running)}]");
            }
        }
    }

    /// <summary>
    /// Every guest a live host defines (QEMU: also under <c>_run/&lt;host&gt;</c>) is an instance the database places there, or the source copy of an
    /// unconfirmed resize from there: a copy left anywhere else (a rolled-back destination, an evacuated source
    /// that came back, a deleted server) is a second copy waiting to run.
    /// </summary>
    public static void AssertGuestsMatch(AllInOne ferry)
    {
        var (instances, holding) = DatabaseView(ferry);
        foreach (var compute in ferry.Computes.Values.Where(c => c.IsRunning && InstancesPath(c.Driver) is not null))
        {
            // What the driver defines now, and (QEMU) the definitions on disk it would adopt after a restart.
            var defined = compute.Driver.ListGuests().Select(g => (g.Uuid, What: g.PowerState.ToString()));
            if (compute.Driver is QemuDriver qemu)
            {
                var run = Path.GetDirectoryName(qemu.RuntimeDirectory(Guid.Empty.ToString()))!;
                defined = defined.Concat(Directory.Exists(run)
                    ? Directory.EnumerateDirectories(run).Select(d => (Uuid: Path.GetFileName(d), What: "definition " + d))
                    : []);
            }
            foreach (var (uuid, what) in defined)
            {
                var owned = instances.TryGetValue(uuid, out var instance) && instance.Host == compute.Host;
                var resizeSource = holding.Any(m => m.InstanceUuid == uuid && m.SourceCompute == compute.Host
                    && m.MigrationType != MigrationType.LiveMigration
                    && (m.Status == MigrationStatus.Finished || (m.Status == MigrationStatus.Error && instance?.Host != compute.Host)));
                var splitByPostCopy = instance?.VmState == VmState.Error && holding.Any(m => m.InstanceUuid == uuid
                    && m.MigrationType == MigrationType.LiveMigration && (m.SourceCompute == compute.Host || m.DestCompute == compute.Host));
                Assert.True(owned || resizeSource || splitByPostCopy,
                    $"{compute.Host} defines guest {uuid} ({what}) but the database places it on {(instance is null ? "no host (deleted)" : instance.Host)}");
            }
        }
    }

    /// <summary>
    /// Each instances directory (one per host, or one shared; fake and QEMU hosts alike) holds, besides <c>_base</c>
    /// and <c>_run</c>, exactly: <c>&lt;uuid&gt;</c> for every instance on a host using it, <c>&lt;uuid&gt;_resize</c>
    /// for every unconfirmed resize from such a host, and, while the source host of a `done` evacuation is down, that
    /// source's old copy (it is removed when the host comes back). A live migration that broke after the switch to
    /// post-copy leaves the instance in ERROR with a copy on both hosts, for the operator.
    /// </summary>
    public static void AssertFilesMatch(AllInOne ferry)
    {
        var (instances, holding) = DatabaseView(ferry);
        var hostsWithFiles = ferry.Computes.Values.Where(c => InstancesPath(c.Driver) is not null).ToList();
        foreach (var group in hostsWithFiles.GroupBy(c => Path.GetFullPath(InstancesPath(c.Driver)!)))
        {
            var hosts = group.Select(c => c.Host).ToHashSet();
            var downHosts = group.Where(c => !c.IsRunning).Select(c => c.Host).ToHashSet();
            var expected = new HashSet<string>(StringComparer.Ordinal);
            var allowed = new HashSet<string>(StringComparer.Ordinal);
            foreach (var instance in instances.Values.Where(i => i.Host is { } h && hosts.Contains(h)))
            {
                (downHosts.Contains(instance.Host!) || instance.VmState == VmState.Error ? allowed : expected).Add(instance.Uuid);
                if (instance.VmState == VmState.Error)
                {
                    // A revert whose source copy would not come back keeps it for the operator.
                    allowed.Add(instance.Uuid + "_resize");
                }
            }
            foreach (var m in holding.Where(m => m.SourceCompute is { } h && hosts.Contains(h) && m.MigrationType != MigrationType.LiveMigration))
            {
                if (m.Status == MigrationStatus.Error)
                {
                    // A confirm that failed on the source left its copy there, recorded; the next start-up removes it.
                    if (instances.TryGetValue(m.InstanceUuid, out var moved) && moved.Host != m.SourceCompute)
                    {
                        allowed.Add(m.InstanceUuid + "_resize");
                    }
                }
                else if (m.Status == MigrationStatus.Finished)
                {
                    (downHosts.Contains(m.SourceCompute!) ? allowed : expected).Add(m.InstanceUuid + "_resize");
                }
                else if (m.Status == MigrationStatus.Done && downHosts.Contains(m.SourceCompute!))
                {
                    allowed.Add(m.InstanceUuid);
                }
            }
            foreach (var m in holding.Where(m => m.MigrationType == MigrationType.LiveMigration
                && (hosts.Contains(m.SourceCompute ?? "") || hosts.Contains(m.DestCompute ?? ""))))
            {
                if (instances.TryGetValue(m.InstanceUuid, out var split) && split.VmState == VmState.Error)
                {
                    allowed.Add(m.InstanceUuid);
                }
            }
            var actual = Directory.Exists(group.Key)
                ? Directory.EnumerateDirectories(group.Key).Select(Path.GetFileName).OfType<string>()
                    .Where(d => d is not ("_base" or FakeDriver.RuntimeDirectoryName)).ToHashSet(StringComparer.Ordinal)
                : [];
            var missing = expected.Except(actual).Order().ToList();
            var stray = actual.Except(expected).Except(allowed).Order().ToList();
            Assert.True(missing.Count == 0 && stray.Count == 0,
                $"Instances directory of {string.Join(", ", hosts.Order())}: missing [{string.Join(", ", missing)}], not in the database [{string.Join(", ", stray)}]");
        }
    }

    /// <summary>
    /// Instances not deleted, by uuid, and the migrations that still hold something on their source (`finished`,
    /// `done`; and a cold move in `error`, whose failed confirm leaves the source copy).
    /// </summary>
    private static (Dictionary<string, Instance> Instances, List<Migration> Holding) DatabaseView(AllInOne ferry)
    {
        var services = ferry.Services;
        var instances = services.GetRequiredService<InstanceStore>().List().Where(i => i.VmState != VmState.Deleted).ToDictionary(i => i.Uuid);
        var store = services.GetRequiredService<MigrationStore>();
        var holding = store.ListUnfinished().Where(m => m.Status == MigrationStatus.Finished)
            .Concat(store.List(new MigrationFilter(Status: MigrationStatus.Done)))
            .Concat(store.List(new MigrationFilter(Status: MigrationStatus.Error))
                .Where(m => m.MigrationType is MigrationType.Migration or MigrationType.Resize or MigrationType.LiveMigration)).ToList();
        return (instances, holding);
    }

    /// <summary>Where a driver keeps its instance directories; null for a driver that keeps none.</summary>
    private static string? InstancesPath(IComputeDriver driver) => driver switch
    {
        FakeDriver fake => fake.Options.InstancesPath,
        QemuDriver qemu => qemu.Options.InstancesPath,
        _ => null,
    };
}
