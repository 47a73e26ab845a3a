using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

[Trait("Requires", "qemu")]
public sealed class QemuColdMigrationTests(TestGuestFixture fixture) : QemuDriverTest(TimeSpan.FromSeconds(90)), IClassFixture<TestGuestFixture>
{
    // Through the device's own block backend: a second writer on node disk0 conflicts with virtio-blk's permissions.
    private const string WritePattern = "qemu-io -d /machine/peripheral/disk0-dev/virtio-backend \"write -P 0x5a 0 1M\"";
    private const long MiB = 1L << 20;
    private const long GiB = 1L << 30;

    [Fact]
    public async Task ColdMigrate_BetweenTwoHostsThenConfirm_DestinationRunsTheSameDiskOnItsOwnBase()
    {
        var source = await NewDriverAsync("src");
        var dest = await NewDriverAsync("dst");
        var guest = Guest();
        var sourcePid = await SpawnAsync(source, guest);
        await WaitForSamplesAsync(source, guest.Uuid, 1);
        await HmpAsync(source, guest.Uuid, WritePattern);

        await dest.CheckCanReceiveAsync(guest, Ct);
        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "dst", guest, Ct);

        Assert.False(QemuProcess.IsAlive(sourcePid, guest.Uuid), "the source still runs after power-off");
        Assert.True(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.False(source.InstanceOnDisk(guest.Uuid));
        Assert.Equal(GuestPowerState.Shutdown, source.GetGuest(guest.Uuid)?.PowerState);

        await dest.FinishMigrationAsync(guest, diskInfo, powerOn: true, Ct);
        Pids.Add((dest.GetProcessId(guest.Uuid)!.Value, guest.Uuid));

        await WaitForSamplesAsync(dest, guest.Uuid, 2);
        AssertPatternReads(await ReadPatternAsync(dest, guest.Uuid));
        Assert.Contains("Pattern verification failed", await ReadPatternAsync(dest, guest.Uuid, offset: "4M"), StringComparison.Ordinal);
        var info = await ImageInfoAsync(Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk"));
        Assert.Equal(BasePath(dest, guest), info.GetProperty("backing-filename").GetString());
        Assert.Equal(GuestPowerState.Running, await dest.QueryPowerStateAsync(guest.Uuid, Ct));
        var transfer = source.GetResizeTransfer(guest.Uuid)!;
        await transfer.Completion.WaitAsync(Ct);
        Assert.True(transfer.Transferred);

        await source.ConfirmMigrationAsync(guest, Ct);

        Assert.False(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.False(Directory.Exists(source.InstanceDirectory(guest.Uuid)));
        Assert.Null(source.GetGuest(guest.Uuid));
        Assert.Null(source.GetProcessId(guest.Uuid));
        Assert.Null(source.GetResizeTransfer(guest.Uuid));
        Assert.False(QemuProcess.IsAlive(sourcePid, guest.Uuid));
        Assert.Equal(GuestPowerState.Running, await dest.QueryPowerStateAsync(guest.Uuid, Ct));
    }

    /// <summary>Two hosts on their own loopback addresses: the source serves its kept copy on its my_ip only, and the destination pulls it from there.</summary>
    [Fact]
    public async Task ColdMigrate_HostsOnTheirOwnAddresses_SourceServesOnlyOnItsOwnAddress()
    {
        var source = await NewDriverAsync("src", address: "127.0.0.2");
        var dest = await NewDriverAsync("dst", address: "127.0.0.3");
        var guest = Guest();
        await SpawnAsync(source, guest);
        await WaitForSamplesAsync(source, guest.Uuid, 1);

        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "dst", guest, Ct);

        Assert.Equal("127.0.0.2", diskInfo[InstanceTransfer.AddressKey]);
        var port = int.Parse(diskInfo[InstanceTransfer.PortKey], CultureInfo.InvariantCulture);
        // Its own address, never a wildcard; another test's socket may hold the same port number on 127.0.0.1 (another address).
        var listening = await ListeningSockets.OnPortAsync(port);
        Assert.Contains(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("127.0.0.2"), port), listening);
        Assert.DoesNotContain(listening, e => e.Address.Equals(System.Net.IPAddress.Any) || e.Address.Equals(System.Net.IPAddress.IPv6Any));
        Assert.True(await ListeningSockets.RefusesAsync("127.0.0.3", port), "the source also serves on the destination's address");
        await dest.FinishMigrationAsync(guest, diskInfo, powerOn: true, Ct);
        Pids.Add((dest.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
        await WaitForSamplesAsync(dest, guest.Uuid, 2);
        var transfer = source.GetResizeTransfer(guest.Uuid)!;
        await transfer.Completion.WaitAsync(Ct);
        Assert.True(transfer.Transferred);
        await source.ConfirmMigrationAsync(guest, Ct);
    }

    [Fact]
    public async Task Resize_BiggerFlavorThenRevert_DestinationRunsBiggerAndSourceComesBackIntact()
    {
        var source = await NewDriverAsync("src");
        var dest = await NewDriverAsync("dst");
        var guest = Guest();
        var resized = guest with { MemoryMb = 128, RootGb = 2 };
        await SpawnAsync(source, guest);
        await WaitForSamplesAsync(source, guest.Uuid, 1);
        await HmpAsync(source, guest.Uuid, WritePattern);

        await dest.CheckCanReceiveAsync(resized, Ct);
        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "dst", resized, Ct);
        await dest.FinishMigrationAsync(resized, diskInfo, powerOn: true, Ct);
        var destPid = dest.GetProcessId(guest.Uuid)!.Value;
        Pids.Add((destPid, guest.Uuid));

        Assert.Equal(128 * MiB, await BaseMemoryAsync(dest, guest.Uuid));
        Assert.Equal(2 * GiB, (await ImageInfoAsync(Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk"))).GetProperty("virtual-size").GetInt64());
        Assert.Equal(128, dest.GetGuest(guest.Uuid)!.MemoryMb);
        AssertPatternReads(await ReadPatternAsync(dest, guest.Uuid));

        await dest.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);
        await source.FinishRevertMigrationAsync(guest, powerOn: true, Ct);
        Pids.Add((source.GetProcessId(guest.Uuid)!.Value, guest.Uuid));

        Assert.False(QemuProcess.IsAlive(destPid, guest.Uuid));
        Assert.False(Directory.Exists(dest.InstanceDirectory(guest.Uuid)));
        Assert.False(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.Null(source.GetResizeTransfer(guest.Uuid));
        await WaitForSamplesAsync(source, guest.Uuid, 1);
        Assert.Equal(64 * MiB, await BaseMemoryAsync(source, guest.Uuid));
        Assert.Equal(1 * GiB, (await ImageInfoAsync(Path.Combine(source.InstanceDirectory(guest.Uuid), "disk"))).GetProperty("virtual-size").GetInt64());
        AssertPatternReads(await ReadPatternAsync(source, guest.Uuid));
        Assert.Equal(GuestPowerState.Running, Assert.Single(source.ListGuests()).PowerState);
    }

    [Fact]
    public async Task Resize_ToTheSameHost_RunsTheNewFlavorAndConfirmLeavesItRunning()
    {
        var host = await NewDriverAsync("one");
        var guest = Guest();
        var resized = guest with { MemoryMb = 96, RootGb = 2 };
        var oldPid = await SpawnAsync(host, guest);
        await WaitForSamplesAsync(host, guest.Uuid, 1);
        await HmpAsync(host, guest.Uuid, WritePattern);

        await host.CheckCanReceiveAsync(resized, Ct);
        var diskInfo = await host.MigrateDiskAndPowerOffAsync(guest, "one", resized, Ct);
        await host.FinishMigrationAsync(resized, diskInfo, powerOn: true, Ct);
        var newPid = host.GetProcessId(guest.Uuid)!.Value;
        Pids.Add((newPid, guest.Uuid));

        Assert.False(QemuProcess.IsAlive(oldPid, guest.Uuid));
        Assert.Equal(96, Assert.Single(host.ListGuests()).MemoryMb);
        Assert.True(Directory.Exists(host.ResizeDirectory(guest.Uuid)));

        await host.ConfirmMigrationAsync(resized, Ct);

        Assert.False(Directory.Exists(host.ResizeDirectory(guest.Uuid)));
        Assert.Equal(newPid, host.GetProcessId(guest.Uuid));
        Assert.Equal(GuestPowerState.Running, await host.QueryPowerStateAsync(guest.Uuid, Ct));
        Assert.Equal(96 * MiB, await BaseMemoryAsync(host, guest.Uuid));
        AssertPatternReads(await ReadPatternAsync(host, guest.Uuid));
        Assert.Equal(BasePath(host, guest), (await ImageInfoAsync(Path.Combine(host.InstanceDirectory(guest.Uuid), "disk"))).GetProperty("backing-filename").GetString());
    }

    [Fact]
    public async Task MigrateDiskAndPowerOff_ResizeDown_RefusedAndGuestKeepsRunning()
    {
        var host = await NewDriverAsync("src");
        var guest = Guest();
        var pid = await SpawnAsync(host, guest);

        var ex = await Assert.ThrowsAsync<InstanceFaultRollbackException>(
            () => host.MigrateDiskAndPowerOffAsync(guest, "dst", guest with { RootGb = 0 }, Ct));
        await host.FinishRevertMigrationAsync(guest, powerOn: true, Ct); // what the compute agent does after the refusal

        Assert.Contains("Unable to resize disk down", ex.Message, StringComparison.Ordinal);
        Assert.Equal(pid, host.GetProcessId(guest.Uuid));
        Assert.True(host.InstanceOnDisk(guest.Uuid));
        Assert.False(Directory.Exists(host.ResizeDirectory(guest.Uuid)));
    }

    [Fact]
    public async Task FinishMigration_WrongToken_RefusedLeavesDestinationCleanAndTheRealTokenStillWorks()
    {
        var source = await NewDriverAsync("src");
        var dest = await NewDriverAsync("dst");
        var guest = Guest(configDrive: true);
        await SpawnAsync(source, guest);
        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "dst", guest, Ct);
        var forged = new Dictionary<string, string>(diskInfo) { ["transfer_token"] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)) };

        var ex = await Assert.ThrowsAsync<FerryException>(() => dest.FinishMigrationAsync(guest, forged, powerOn: true, Ct));

        Assert.Contains("refused the token", ex.Message, StringComparison.Ordinal);
        AssertClean(dest, guest.Uuid);

        await dest.FinishMigrationAsync(guest, diskInfo, powerOn: true, Ct);
        Pids.Add((dest.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
        Assert.True(File.Exists(Path.Combine(dest.InstanceDirectory(guest.Uuid), "disk.config")));
        Assert.Equal(GuestPowerState.Running, await dest.QueryPowerStateAsync(guest.Uuid, Ct));
        await source.ConfirmMigrationAsync(guest, Ct);
        Assert.False(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
    }

    [Fact]
    public async Task FinishMigration_TamperedFile_RefusedLeavesDestinationCleanAndSourceReverts()
    {
        var source = await NewDriverAsync("src");
        var dest = await NewDriverAsync("dst");
        var guest = Guest();
        await SpawnAsync(source, guest);
        await WaitForSamplesAsync(source, guest.Uuid, 1);
        await HmpAsync(source, guest.Uuid, WritePattern);
        var diskInfo = await source.MigrateDiskAndPowerOffAsync(guest, "dst", guest, Ct);
        var kept = Path.Combine(source.ResizeDirectory(guest.Uuid), "disk");
        var original = FlipLastByte(kept);

        var ex = await Assert.ThrowsAsync<FerryException>(() => dest.FinishMigrationAsync(guest, diskInfo, powerOn: true, Ct));

        Assert.Contains("sha256", ex.Message, StringComparison.Ordinal);
        AssertClean(dest, guest.Uuid);
        RestoreLastByte(kept, original);
        await source.FinishRevertMigrationAsync(guest, powerOn: true, Ct);
        Pids.Add((source.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
        await WaitForSamplesAsync(source, guest.Uuid, 1);
        AssertPatternReads(await ReadPatternAsync(source, guest.Uuid));
        Assert.False(Directory.Exists(source.ResizeDirectory(guest.Uuid)));
        Assert.Null(source.GetResizeTransfer(guest.Uuid));
    }

    [Fact]
    public async Task InitHost_AfterAgentRestart_ReportsTheKeptResizeCopyAndRevertBringsItBack()
    {
        var first = await NewDriverAsync("src");
        var guest = Guest();
        await SpawnAsync(first, guest);
        await first.MigrateDiskAndPowerOffAsync(guest, "dst", guest, Ct);
        await first.GetResizeTransfer(guest.Uuid)!.DisposeAsync(); // the transfer dies with the agent
        await first.DisposeAsync();

        var second = await NewDriverAsync("src"); // InitHostAsync adopts the kept <uuid>_resize copy

        Assert.Equal(GuestPowerState.Shutdown, second.GetGuest(guest.Uuid)?.PowerState);
        Assert.False(second.InstanceOnDisk(guest.Uuid));
        await second.FinishRevertMigrationAsync(guest, powerOn: true, Ct);
        Pids.Add((second.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
        Assert.Equal(GuestPowerState.Running, await second.QueryPowerStateAsync(guest.Uuid, Ct));
        Assert.False(Directory.Exists(second.ResizeDirectory(guest.Uuid)));
    }

    [Fact]
    public async Task CheckCanReceive_MoreThanTheHostHasOrNoKernel_RefusedAsResizeClaimFailure()
    {
        var host = await NewDriverAsync("dst");
        var noKernel = await NewDriverAsync("nok", kernelPath: Path.Combine(Root, "missing.elf"));
        var guest = Guest();

        var memory = await Assert.ThrowsAsync<InstanceFaultRollbackException>(() => host.CheckCanReceiveAsync(guest with { MemoryMb = int.MaxValue / 2 }, Ct));
        var disk = await Assert.ThrowsAsync<InstanceFaultRollbackException>(() => host.CheckCanReceiveAsync(guest with { RootGb = 1 << 24 }, Ct));
        await Assert.ThrowsAsync<InstanceFaultRollbackException>(() => noKernel.CheckCanReceiveAsync(guest, Ct));
        await Assert.ThrowsAsync<InstanceFaultRollbackException>(() => host.CheckCanReceiveAsync(guest with { ImageRef = "no-such-image" }, Ct));
        await host.CheckCanReceiveAsync(guest, Ct);

        Assert.Contains("Free memory", memory.Message, StringComparison.Ordinal);
        Assert.Contains("Free disk", disk.Message, StringComparison.Ordinal);
    }

    // --- helpers ---

    private async Task<QemuDriver> NewDriverAsync(string host, string? kernelPath = null, string address = "127.0.0.1")
    {
        var driver = new QemuDriver(new QemuDriverOptions
        {
            HostName = host,
            InstancesPath = Path.Combine(Root, host),
            TestGuestKernelPath = kernelPath ?? fixture.KernelPath,
            MigrationAddress = address,
            HostAddress = address,
        });
        Drivers.Add(driver);
        await driver.InitHostAsync(Ct);
        return driver;
    }

    private static GuestSpec Guest(bool configDrive = false) => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
        Vcpus = 1,
        MemoryMb = 64,
        RootGb = 1,
        ImageRef = QemuTestGuest.DefaultImageRef,
        ConfigDrive = configDrive,
    };

    private async Task<int> SpawnAsync(QemuDriver driver, GuestSpec guest)
    {
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);
        var pid = driver.GetProcessId(guest.Uuid) ?? throw new InvalidOperationException("no pid after spawn");
        Pids.Add((pid, guest.Uuid));
        return pid;
    }

    private async Task WaitForSamplesAsync(QemuDriver driver, string uuid, int count)
    {
        var log = driver.ConsoleLogPath(uuid);
        var started = Stopwatch.StartNew();
        while (true)
        {
            var text = File.Exists(log) ? await File.ReadAllTextAsync(log, Ct) : "";
            if (QemuTestGuest.ParseSamples(text).Count >= count)
            {
                return;
            }
            if (started.Elapsed > TimeSpan.FromSeconds(20))
            {
                Assert.Fail($"waiting for {count} status lines of {uuid} on {driver.Options.HostName} after {started.Elapsed.TotalSeconds:F1} s; log: {text}");
            }
            await Task.Delay(100, Ct);
        }
    }

    private async Task HmpAsync(QemuDriver driver, string uuid, string commandLine)
    {
        var reply = await driver.ExecuteQmpAsync(uuid, "human-monitor-command", new JsonObject { ["command-line"] = commandLine }, Ct);
        // qemu-io reports success on QEMU's stdout; anything the monitor answers is an error.
        Assert.Equal("", reply.GetString());
    }

    /// <summary>
    /// Reads the pattern back from the guest's disk file with qemu-io (shared, read-only): HMP's qemu-io prints to
    /// QEMU's stdout, not to the monitor, so its answer cannot be checked over QMP.
    /// </summary>
    private Task<string> ReadPatternAsync(QemuDriver driver, string uuid, string offset = "0") =>
        RunAsync("qemu-io", allowFailure: true, "-r", "-U", "-f", "qcow2", "-c", $"read -P 0x5a {offset} 1M", Path.Combine(driver.InstanceDirectory(uuid), "disk"));

    private static void AssertPatternReads(string output)
    {
        Assert.Contains("read 1048576/1048576 bytes", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Pattern verification failed", output, StringComparison.Ordinal);
    }

    private async Task<long> BaseMemoryAsync(QemuDriver driver, string uuid) =>
        (await driver.ExecuteQmpAsync(uuid, "query-memory-size-summary", null, Ct)).GetProperty("base-memory").GetInt64();

    private async Task<JsonElement> ImageInfoAsync(string path)
    {
        using var doc = JsonDocument.Parse(await RunAsync("qemu-img", allowFailure: false, "info", "-U", "--output=json", path));
        return doc.RootElement.Clone();
    }

    private async Task<string> RunAsync(string binary, bool allowFailure, params string[] args)
    {
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        using var process = Process.Start(psi)!;
        var output = process.StandardOutput.ReadToEndAsync(Ct);
        var error = process.StandardError.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        Assert.True(allowFailure || process.ExitCode == 0, $"{binary} {string.Join(' ', args)} failed: {await error}");
        return await output + await error;
    }

    private static string BasePath(QemuDriver driver, GuestSpec guest) =>
        Path.Combine(driver.BaseDirectory, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(guest.ImageRef))));

    private static void AssertClean(QemuDriver dest, string uuid)
    {
        Assert.False(Directory.Exists(dest.InstanceDirectory(uuid)), "the destination kept files of a failed finish");
        Assert.Null(dest.GetGuest(uuid));
        Assert.Empty(dest.ListGuests());
        Assert.Null(dest.GetProcessId(uuid));
    }

    private static byte FlipLastByte(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        file.Seek(-1, SeekOrigin.End);
        var original = (byte)file.ReadByte();
        file.Seek(-1, SeekOrigin.End);
        file.WriteByte((byte)(original ^ 0xff));
        return original;
    }

    private static void RestoreLastByte(string path, byte original)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        file.Seek(-1, SeekOrigin.End);
        file.WriteByte(original);
    }
}
