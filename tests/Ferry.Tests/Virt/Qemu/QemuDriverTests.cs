using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Ferry.Virt;
using Ferry.Virt.Qemu;
using Ferry.Virt.Qemu.Qmp;

namespace Ferry.Tests.Virt.Qemu;

[Trait("Requires", "qemu")]
public sealed partial class QemuDriverTests(TestGuestFixture fixture) : QemuDriverTest(TimeSpan.FromSeconds(40)), IClassFixture<TestGuestFixture>
{
    private QemuDriver NewDriver(bool killOnDispose = true, string host = "qemu-test")
    {
        var driver = new QemuDriver(new QemuDriverOptions
        {
            HostName = host,
            InstancesPath = Path.Combine(Root, host == "qemu-test" ? "instances" : host),
            TestGuestKernelPath = fixture.KernelPath,
            Accel = "auto",
            KillGuestsOnDispose = killOnDispose,
        });
        Drivers.Add(driver);
        return driver;
    }

    private static GuestSpec Guest(string? dirtyMiBps = null, bool configDrive = false) => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
        Vcpus = 1,
        MemoryMb = 64,
        RootGb = 1,
        ImageRef = QemuTestGuest.DefaultImageRef,
        ConfigDrive = configDrive,
        Metadata = dirtyMiBps is null ? new Dictionary<string, string>() : new Dictionary<string, string> { [QemuTestGuest.DirtyRateMetadataKey] = dirtyMiBps },
    };

    private async Task<int> SpawnAsync(QemuDriver driver, GuestSpec guest)
    {
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);
        var pid = driver.GetProcessId(guest.Uuid) ?? throw new InvalidOperationException("no pid after spawn");
        Pids.Add((pid, guest.Uuid));
        return pid;
    }

    /// <summary>Waits until the console log holds at least <paramref name="count"/> status lines.</summary>
    private async Task<IReadOnlyList<QemuTestGuest.Sample>> WaitForSamplesAsync(QemuDriver driver, string uuid, int count)
    {
        var log = driver.ConsoleLogPath(uuid);
        var started = Stopwatch.StartNew();
        while (true)
        {
            var text = File.Exists(log) ? await File.ReadAllTextAsync(log, Ct) : "";
            var samples = QemuTestGuest.ParseSamples(text);
            if (samples.Count >= count)
            {
                return samples;
            }
            if (started.Elapsed > TimeSpan.FromSeconds(15))
            {
                Assert.Fail($"waiting for {count} status lines of {uuid}: got {samples.Count} after {started.Elapsed.TotalSeconds:F1} s; log: {text}");
            }
            await Task.Delay(100, Ct);
        }
    }

    [Fact]
    public async Task Spawn_TestGuest_QemuRunsInItsOwnSessionAndLogsBesideConsole()
    {
        var driver = NewDriver();
        await driver.InitHostAsync(Ct);
        var guest = Guest();

        var pid = await SpawnAsync(driver, guest);

        // Its own session and process group: a terminal's Ctrl-C or a SIGTERM to the agent's group cannot reach it.
        var (session, group) = SessionAndGroup(pid);
        var (ownSession, ownGroup) = SessionAndGroup(Environment.ProcessId);
        Assert.Equal((pid, pid), (session, group));
        Assert.NotEqual(ownSession, session);
        Assert.NotEqual(ownGroup, group);
        var log = Path.Combine(driver.InstanceDirectory(guest.Uuid), "qemu.log");
        Assert.StartsWith("--- ", await File.ReadAllTextAsync(log, Ct));
    }

    [Fact]
    public async Task Spawn_QemuRefusesToStart_FailureQuotesQemuAndNamesItsLog()
    {
        var driver = NewDriver();
        driver.Options.CpuModel = "no-such-cpu";
        await driver.InitHostAsync(Ct);
        var guest = Guest();

        var ex = await Assert.ThrowsAsync<QemuStartException>(() => driver.SpawnAsync(guest, reuseDisks: false, Ct));

        Assert.Contains("exited during start-up", ex.Message);
        Assert.Contains("no-such-cpu", ex.Message); // QEMU's own words: unable to find CPU model 'no-such-cpu'
        Assert.Contains("qemu.log", ex.Details);
        Assert.Contains("no-such-cpu", ex.Details);
        Assert.Null(driver.GetGuest(guest.Uuid));
    }

    /// <summary>Fields 6 and 5 of /proc/&lt;pid&gt;/stat: session id and process group id.</summary>
    private static (int Session, int Group) SessionAndGroup(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (int.Parse(fields[3], CultureInfo.InvariantCulture), int.Parse(fields[2], CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Spawn_TestGuest_SerialShowsIncreasingCounterAndVerifiableChecksum()
    {
        var driver = NewDriver();
        await driver.InitHostAsync(Ct);
        var guest = Guest(dirtyMiBps: "8");
        var spawned = Stopwatch.StartNew();

        var pid = await SpawnAsync(driver, guest);
        var first = await WaitForSamplesAsync(driver, guest.Uuid, 1);
        var firstLineAfter = spawned.Elapsed;
        var samples = await WaitForSamplesAsync(driver, guest.Uuid, 4);

        Assert.True(firstLineAfter < TimeSpan.FromSeconds(5), $"first status line after {firstLineAfter.TotalMilliseconds:F0} ms");
        Assert.Equal(0, first[0].Counter); // the guest prints its state once before the first tick (a slow poll may see more lines)
        for (var i = 1; i < samples.Count; i++)
        {
            Assert.True(samples[i].Counter > samples[i - 1].Counter, $"counter did not increase: {samples[i - 1]} then {samples[i]}");
        }
        var log = await File.ReadAllTextAsync(driver.ConsoleLogPath(guest.Uuid), Ct);
        var boot = BootLine().Match(log);
        Assert.True(boot.Success, log);
        Assert.Equal("84", boot.Groups[2].Value); // 8 MiB/s = 82 KiB per 10 ms tick, rounded up to whole pages
        foreach (var sample in samples)
        {
            Assert.Equal(QemuTestGuest.ExpectedChecksum(sample.Counter, int.Parse(boot.Groups[1].Value, CultureInfo.InvariantCulture), 84), sample.Checksum);
        }
        Assert.DoesNotContain("ferry-guest corrupt", log);
        Assert.Equal(GuestPowerState.Running, await driver.QueryPowerStateAsync(guest.Uuid, Ct));
        Assert.Equal(GuestPowerState.Running, driver.GetGuest(guest.Uuid)!.PowerState);
        var cmdline = (await File.ReadAllTextAsync($"/proc/{pid}/cmdline", Ct)).Split('\0');
        Assert.Contains("-uuid", cmdline);
        Assert.Equal(guest.Uuid, cmdline[Array.IndexOf(cmdline, "-uuid") + 1]);
        Assert.Equal(guest.Name, cmdline[Array.IndexOf(cmdline, "-name") + 1]);
    }

    [Fact]
    public async Task Spawn_TestGuest_LaysOutNovaInstanceFiles()
    {
        var driver = NewDriver();
        var guest = Guest(configDrive: true);

        await SpawnAsync(driver, guest);

        var dir = driver.InstanceDirectory(guest.Uuid);
        var basePath = Path.Combine(driver.BaseDirectory, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(guest.ImageRef))));
        Assert.True(File.Exists(basePath), basePath);
        Assert.True(File.Exists(Path.Combine(dir, "disk.config")));
        Assert.True(File.Exists(Path.Combine(dir, "console.log")));
        var info = await RunAsync("qemu-img", "info", "-U", "--output=json", Path.Combine(dir, "disk"));
        Assert.Contains("\"format\": \"qcow2\"", info);
        Assert.Contains($"\"backing-filename\": \"{basePath}\"", info);
        Assert.Contains("\"virtual-size\": 1073741824", info);
        Assert.True(driver.InstanceOnDisk(guest.Uuid));
        Assert.True(driver.HasLocalDisks(guest));
        var blocks = await driver.ExecuteQmpAsync(guest.Uuid, "query-named-block-nodes", null, Ct);
        var nodes = blocks.EnumerateArray().Select(n => n.GetProperty("node-name").GetString()).ToList();
        Assert.Contains("disk0", nodes);
        Assert.Contains("config0", nodes);
    }

    [Fact]
    public async Task Spawn_WithConfigDrive_WritesNovasIso9660ConfigDrive()
    {
        var driver = NewDriver();
        var guest = Guest(configDrive: true) with
        {
            DisplayName = "Web server_01.prod",
            ProjectId = "p-1",
            AvailabilityZone = "zone-a",
            Metadata = new Dictionary<string, string> { ["role"] = "web" },
            UserData = Convert.ToBase64String("#cloud-config\nhostname: web\n"u8.ToArray()),
            KeyName = "k1",
            KeyData = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAMBQ6v4Ctefx2tUr3KptM0wnhjrhUCz07gDnXn1VGN alice@example\n",
            KeyType = "ssh",
        };

        await SpawnAsync(driver, guest);

        var drive = Path.Combine(driver.InstanceDirectory(guest.Uuid), "disk.config");
        Assert.Equal("config-2", (await RunAsync("blkid", "-o", "value", "-s", "LABEL", drive)).Trim());
        Assert.Equal("iso9660", (await RunAsync("blkid", "-o", "value", "-s", "TYPE", drive)).Trim());
        var extracted = Path.Combine(Root, "meta_data.json");
        await RunAsync("xorriso", "-osirrox", "on", "-indev", drive, "-extract", "/openstack/latest/meta_data.json", extracted);
        var bytes = await File.ReadAllBytesAsync(extracted, Ct);
        Assert.True(bytes[0] == (byte)'{', "no byte-order mark: cloud-init's JSON loader refuses one");
        var meta = System.Text.Json.Nodes.JsonNode.Parse(bytes)!;
        Assert.Equal(guest.Uuid, (string?)meta["uuid"]);
        Assert.Equal("Web server_01.prod", (string?)meta["name"]);
        Assert.Equal("web-server-01-prod", (string?)meta["hostname"]);
        Assert.Equal("zone-a", (string?)meta["availability_zone"]);
        Assert.Equal("p-1", (string?)meta["project_id"]);
        Assert.Equal("web", (string?)meta["meta"]!["role"]);
        // Nova's meta_data.json: public_keys maps the key name to its data, keys lists name, type and data.
        Assert.Equal(guest.KeyData, (string?)meta["public_keys"]!["k1"]);
        Assert.Single(meta["public_keys"]!.AsObject());
        var key = Assert.Single(meta["keys"]!.AsArray())!;
        Assert.Equal(("k1", "ssh", guest.KeyData), ((string?)key["name"], (string?)key["type"], (string?)key["data"]));
        var listing = await RunAsync("xorriso", "-indev", drive, "-find", "/openstack", "-type", "f");
        var userData = Path.Combine(Root, "user_data");
        await RunAsync("xorriso", "-osirrox", "on", "-indev", drive, "-extract", "/openstack/latest/user_data", userData);
        Assert.Equal("#cloud-config\nhostname: web\n", await File.ReadAllTextAsync(userData, Ct));
        foreach (var file in new[] { "2012-08-10/meta_data.json", "latest/network_data.json", "latest/vendor_data.json", "latest/vendor_data2.json" })
        {
            Assert.Contains($"/openstack/{file}", listing, StringComparison.Ordinal);
        }
        // A destination writes the drive again instead of copying it: the bytes must not depend on when.
        var again = NewDriver(host: "qemu-test-2");
        await Task.Delay(1100, Ct);
        await again.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: true, parallelConnections: 1, Ct);
        Pids.Add((again.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
        Assert.Equal(await File.ReadAllBytesAsync(drive, Ct), await File.ReadAllBytesAsync(Path.Combine(again.InstanceDirectory(guest.Uuid), "disk.config"), Ct));
    }

    [Theory]
    [InlineData("Web server_01.prod", "web-server-01-prod")]
    [InlineData("-db-", "db")]
    [InlineData("!!!", "server-u")]
    public void ConfigDriveHostname_FollowsNovasSanitizeHostname(string displayName, string expected) =>
        Assert.Equal(expected, ConfigDrive.Hostname(displayName, "u"));

    [Fact]
    public async Task PowerOffThenOn_StopsProcessAndBootsAgainFromTheSameDisk()
    {
        var driver = NewDriver();
        var guest = Guest();
        var pid = await SpawnAsync(driver, guest);
        await WaitForSamplesAsync(driver, guest.Uuid, 1);

        await driver.PowerOffAsync(guest.Uuid, Ct);

        Assert.False(QemuProcess.IsAlive(pid, guest.Uuid), "QEMU still runs after power off");
        Assert.Null(driver.GetProcessId(guest.Uuid));
        Assert.Equal(GuestPowerState.Shutdown, driver.GetGuest(guest.Uuid)!.PowerState);
        Assert.Equal(GuestPowerState.Shutdown, await driver.QueryPowerStateAsync(guest.Uuid, Ct));
        Assert.True(File.Exists(Path.Combine(driver.InstanceDirectory(guest.Uuid), "disk")));

        File.Delete(driver.ConsoleLogPath(guest.Uuid));
        await driver.PowerOnAsync(guest.Uuid, Ct);
        var newPid = driver.GetProcessId(guest.Uuid)!.Value;
        Pids.Add((newPid, guest.Uuid));
        await WaitForSamplesAsync(driver, guest.Uuid, 2);

        Assert.NotEqual(pid, newPid);
        Assert.Equal(GuestPowerState.Running, await driver.QueryPowerStateAsync(guest.Uuid, Ct));
    }

    [Fact]
    public async Task Destroy_WithDisks_LeavesNoProcessAndNoFiles()
    {
        var driver = NewDriver();
        var guest = Guest();
        var pid = await SpawnAsync(driver, guest);

        await driver.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);

        Assert.False(QemuProcess.IsAlive(pid, guest.Uuid), "QEMU still runs after destroy");
        Assert.False(Directory.Exists($"/proc/{pid}") && QemuProcess.IsAlive(pid, guest.Uuid));
        Assert.False(Directory.Exists(driver.InstanceDirectory(guest.Uuid)));
        Assert.False(driver.InstanceOnDisk(guest.Uuid));
        Assert.Null(driver.GetGuest(guest.Uuid));
        Assert.Empty(driver.ListGuests());
        await driver.DestroyAsync(guest.Uuid, destroyDisks: true, Ct); // absent: no error
    }

    [Fact]
    public async Task Spawn_TwoGuestsAtOnce_BothRunIndependently()
    {
        var driver = NewDriver();
        var a = Guest(dirtyMiBps: "4");
        var b = Guest();

        await Task.WhenAll(SpawnAsync(driver, a), SpawnAsync(driver, b));
        await Task.WhenAll(WaitForSamplesAsync(driver, a.Uuid, 2), WaitForSamplesAsync(driver, b.Uuid, 2));

        Assert.NotEqual(driver.GetProcessId(a.Uuid), driver.GetProcessId(b.Uuid));
        Assert.Equal(2, driver.ListGuests().Count(g => g.PowerState == GuestPowerState.Running));
        await driver.DestroyAsync(a.Uuid, destroyDisks: true, Ct);
        Assert.Equal(GuestPowerState.Running, await driver.QueryPowerStateAsync(b.Uuid, Ct));
        Assert.Single(driver.ListGuests());
    }

    [Fact]
    public async Task InitHost_AfterAgentRestart_ReattachesRunningGuestOverQmp()
    {
        var first = NewDriver(killOnDispose: false);
        var guest = Guest();
        var pid = await SpawnAsync(first, guest);
        await first.DisposeAsync();
        Assert.True(QemuProcess.IsAlive(pid, guest.Uuid), "the guest should outlive the agent");

        var second = NewDriver();
        var guests = await second.InitHostAsync(Ct);

        var found = Assert.Single(guests);
        Assert.Equal(guest.Uuid, found.Uuid);
        Assert.Equal(GuestPowerState.Running, found.PowerState);
        Assert.Equal(pid, second.GetProcessId(guest.Uuid));
        await second.DestroyAsync(guest.Uuid, destroyDisks: true, Ct);
        Assert.False(QemuProcess.IsAlive(pid, guest.Uuid));
    }

    [Fact]
    public async Task Dispose_KillsEveryGuestProcess()
    {
        var driver = NewDriver();
        var guest = Guest();
        var pid = await SpawnAsync(driver, guest);

        await driver.DisposeAsync();

        Assert.False(QemuProcess.IsAlive(pid, guest.Uuid));
    }

    [Fact]
    public async Task HostResources_AndSharedStorageFile_ReportFromThisHost()
    {
        var driver = NewDriver();
        await driver.InitHostAsync(Ct);

        var resources = driver.GetHostResources();
        var file = driver.CreateSharedStorageTestFile();

        Assert.Equal("QEMU", resources.HypervisorType);
        Assert.True(resources.HypervisorVersion >= 7_000_000, resources.HypervisorVersion.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(Environment.ProcessorCount, resources.Vcpus);
        Assert.True(resources.MemoryMb > 0);
        Assert.True(resources.LocalGb > 0);
        Assert.True(driver.CheckSharedStorageTestFile(file));
        driver.CleanupSharedStorageTestFile(file);
        Assert.False(driver.CheckSharedStorageTestFile(file));
    }

    private async Task<string> RunAsync(string binary, params string[] args)
    {
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        using var process = Process.Start(psi)!;
        var errors = process.StandardError.ReadToEndAsync(Ct); // xorriso reports progress there
        var output = await process.StandardOutput.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        Assert.True(process.ExitCode == 0, $"{binary} {string.Join(' ', args)}: exit {process.ExitCode}: {await errors}");
        return output;
    }

    [GeneratedRegex(@"ferry-guest boot region_mib=(\d+) dirty_kib_per_tick=(\d+)")]
    private static partial Regex BootLine();
}
