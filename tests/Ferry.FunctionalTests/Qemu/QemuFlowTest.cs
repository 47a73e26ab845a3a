using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Ferry.Compute;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Domain;
using Ferry.Virt.Qemu;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// Helpers of the flow tests on real QEMU guests: the proof that a guest kept running and lost no memory is its
/// serial console (read through the API's os-getConsoleOutput), whose counter must keep increasing and whose
/// checksum must equal the closed form of tools/test-guest.
/// </summary>
public abstract class QemuFlowTest<TFixture>(TFixture fixture) : FlowTest<TFixture>(fixture)
    where TFixture : QemuFerryFixture
{
    protected override TimeSpan WaitLimit => TimeSpan.FromSeconds(90);

    protected IPlacementService Placement => Fixture.Ferry.Services.GetRequiredService<IPlacementService>();

    protected QemuDriver Qemu(string host) => Fixture.Driver(host);

    private readonly List<string> _booted = [];

    /// <summary>Checks the invariants, then deletes the test's guests: they cost CPU, and a later host crash must not hit them.</summary>
    public override async Task DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        finally
        {
            // Even after a failed check: a guest left behind would fail every later test of the fixture.
            foreach (var id in _booted)
            {
                await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}");
            }
            foreach (var id in _booted)
            {
                await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
            }
        }
    }

    /// <summary>Deletes the server when the test ends.</summary>
    protected void Track(string id) => _booted.Add(id);

    /// <summary>
    /// Boots the test guest (64 MiB) dirtying <paramref name="dirtyMiBps"/> of its 4 MiB region, with a port on the
    /// seeded network (a NIC on the fixture's bridge: every move carries it); with <paramref name="configDrive"/> the
    /// guest also learns its address and answers on the network.
    /// </summary>
    protected async Task<string> BootGuestAsync(string host, double dirtyMiBps = 1, bool configDrive = false)
    {
        var id = await BootAsync(host, flavor: "m1.nano", metadata: new Dictionary<string, string>
        {
            [QemuTestGuest.DirtyRateMetadataKey] = dirtyMiBps.ToString(CultureInfo.InvariantCulture),
        }, networks: "auto", configDrive: configDrive);
        _booted.Add(id);
        return id;
    }

    /// <summary>The guest's status lines so far, each checked against the closed-form checksum, and whether they are all intact yet.</summary>
    /// <param name="movedAtCounter">
    /// Lines from this counter on were printed after a live migration (QemuTestGuest.CheckIntegrity): 0 when the whole
    /// log is the destination's, the counter before the move on shared storage; by default the guest never moved live.
    /// </param>
    private async Task<(IReadOnlyList<QemuTestGuest.Sample> Samples, bool Healing)> CheckedSamplesAsync(string id, long movedAtCounter)
    {
        var (status, body) = await Admin.ActionAsync(id, JsonNode.Parse("""{"os-getConsoleOutput": {"length": 400}}""")!);
        Assert.True(status == HttpStatusCode.OK, $"console output: {(int)status} {body?.ToJsonString()}");
        var log = body!["output"]!.GetValue<string>();
        var instance = Instances.Get(id);
        // Under TCG, QEMU 7.2 may hand over a stale copy of a page; the guest heals (QemuTestGuest.TcgStaleCounterTicks).
        var (verdict, detail) = QemuTestGuest.CheckIntegrity(log, QemuTestGuest.DefaultRegionMib, KibPerTick(instance),
            tolerateStalePage: Qemu(instance.Host!).Accel == "tcg", movedAtCounter);
        Assert.True(verdict != QemuTestGuest.Integrity.Lost, $"{detail}: {log}");
        return (QemuTestGuest.ParseSamples(log), verdict == QemuTestGuest.Integrity.Healing);
    }

    /// <inheritdoc cref="CheckedSamplesAsync"/>
    protected async Task<IReadOnlyList<QemuTestGuest.Sample>> SamplesAsync(string id, long movedAtCounter = long.MaxValue) =>
        (await CheckedSamplesAsync(id, movedAtCounter)).Samples;

    /// <summary>Waits until the guest prints a counter above <paramref name="above"/> with every line intact; returns the newest counter.</summary>
    protected async Task<long> WaitForCounterAsync(string id, long above, long movedAtCounter = long.MaxValue)
    {
        var started = Stopwatch.StartNew();
        while (true)
        {
            var (samples, healing) = await CheckedSamplesAsync(id, movedAtCounter);
            if (samples.Count > 0 && samples[^1].Counter > above && !healing)
            {
                return samples[^1].Counter;
            }
            if (started.Elapsed > WaitLimit)
            {
                Assert.Fail($"{id}: no intact counter above {above} after {started.Elapsed.TotalSeconds:F0} s (last {(samples.Count > 0 ? samples[^1].Counter : -1)}, healing: {healing})");
            }
            await Task.Delay(250);
        }
    }

    /// <summary>Exactly one QEMU runs the guest, on <paramref name="host"/>, and placement holds it there only.</summary>
    protected void AssertRunsOnlyOn(string id, string host)
    {
        foreach (var (name, driver) in Fixture.Ferry.Drivers)
        {
            var pid = ((QemuDriver)driver).GetProcessId(id);
            if (name == host)
            {
                Assert.True(pid is { } p && QemuProcess.IsAlive(p, id), $"no QEMU of {id} on {host}");
            }
            else
            {
                Assert.True(pid is null, $"a QEMU of {id} still runs on {name} (pid {pid})");
            }
        }
        var allocations = Placement.GetAllocations(id).Allocations;
        Assert.Equal([Fixture.Ferry.Computes[host].NodeUuid], allocations.Keys);
    }

    /// <summary>A host failure: its agent stops and every QEMU it ran dies.</summary>
    protected async Task<string> CrashHostAsync(string host)
    {
        await Fixture.Ferry.Computes[host].StopAsync();
        var driver = Qemu(host);
        foreach (var guest in driver.ListGuests())
        {
            if (driver.GetProcessId(guest.Uuid) is { } pid)
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
                await process.WaitForExitAsync();
            }
        }
        var serviceId = (await Admin.GetAsync($"os-services?host={host}&binary=nova-compute")).Body!["services"]![0]!["id"]!.GetValue<string>();
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = true });
        return serviceId;
    }

    protected async Task RecoverHostAsync(string host, string serviceId)
    {
        if (!Fixture.Ferry.Computes[host].IsRunning)
        {
            await Fixture.Ferry.StartComputeAsync(host, CancellationToken.None);
        }
        await Admin.SendAsync(HttpMethod.Put, $"os-services/{serviceId}", new JsonObject { ["forced_down"] = false });
    }

    /// <summary>
    /// A network failure under a running migration: resets (with the kernel's <c>ss -K</c>) every established TCP
    /// connection of the QEMU with this pid, on both ends. Its QMP socket is a unix socket and stays. Returns how many were cut.
    /// </summary>
    protected static async Task<int> CutTcpConnectionsAsync(int pid)
    {
        var listed = await RunAsync("ss", "-tnpH", "state", "established");
        var ports = listed.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(line => line.Contains($"pid={pid},", StringComparison.Ordinal))
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2])
            .Select(local => local[(local.LastIndexOf(':') + 1)..])
            .ToList();
        foreach (var port in ports)
        {
            await RunAsync("ss", "-K", $"( sport = :{port} or dport = :{port} )");
        }
        return ports.Count;
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {file}");
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return output;
    }

    /// <summary>Makes live migrations from <paramref name="host"/> crawl (1 MiB/s) until disposed, so a test can act mid-way.</summary>
    protected IDisposable SlowMigrationsFrom(string host) => Policy(host, o => o.LiveMigrationBandwidthMiBps = 1);

    /// <summary>Changes the live-migration policy of <paramref name="host"/>'s agent until disposed.</summary>
    protected IDisposable Policy(string host, Action<ComputeOptions> change)
    {
        var o = Fixture.Ferry.Computes[host].Options;
        var saved = (o.LiveMigrationBandwidthMiBps, o.LiveMigrationPermitPostCopy, o.LiveMigrationPermitAutoConverge,
            o.LiveMigrationTimeoutAction, o.LiveMigrationCompletionTimeoutSecondsPerGiB, o.LiveMigrationDowntimeMs, o.LiveMigrationParallelConnections);
        change(o);
        return new Restore(() => (o.LiveMigrationBandwidthMiBps, o.LiveMigrationPermitPostCopy, o.LiveMigrationPermitAutoConverge,
            o.LiveMigrationTimeoutAction, o.LiveMigrationCompletionTimeoutSecondsPerGiB, o.LiveMigrationDowntimeMs, o.LiveMigrationParallelConnections) = saved);
    }

    private static int KibPerTick(Instance instance) =>
        instance.Metadata.TryGetValue(QemuTestGuest.DirtyRateMetadataKey, out var rate)
            ? (int)Math.Ceiling(double.Parse(rate, CultureInfo.InvariantCulture) * 1024 / QemuTestGuest.TicksPerSecond)
            : 0;

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
