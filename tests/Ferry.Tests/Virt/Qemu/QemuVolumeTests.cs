using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Ferry.Core.Volumes;
using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

/// <summary>
/// Volumes at the driver: a real NBD export (qemu-nbd, as the volume service's daemon would serve it) hot-plugged into a
/// running test guest, read through the guest's QEMU, taken away again (the guest ejects the slot), and opened again on
/// every start because the guest's definition keeps it.
/// </summary>
[Trait("Requires", "qemu")]
public sealed class QemuVolumeTests(TestGuestFixture fixture) : QemuDriverTest(TimeSpan.FromSeconds(60)), IClassFixture<TestGuestFixture>
{
    [Fact]
    public async Task AttachVolumeAsync_RunningGuest_HotPluggedReadableAndDetachedAgain()
    {
        await using var export = await NbdExport.StartAsync(Root, "volume-a", pattern: 0xab, Ct);
        var driver = NewDriver();
        var guest = Guest();
        await SpawnAsync(driver, guest);
        var volume = new GuestVolume("a", "/dev/vdb", export.Connection);

        await driver.AttachVolumeAsync(guest.Uuid, volume, Ct);

        Assert.Equal(["vol-vdb"], await driver.OpenVolumeNodesAsync(guest.Uuid, Ct));
        Assert.Contains("0x10", await PciSlotOfAsync(driver, guest.Uuid, "vol-vdb-dev"), StringComparison.Ordinal);
        // The guest's QEMU reads what the export holds (qemu-io through the node; no error means the pattern matched).
        var read = await QemuIoAsync(driver, guest.Uuid, "vol-vdb", "read -P 0xab 0 64k");
        Assert.DoesNotContain("Pattern verification failed", read, StringComparison.Ordinal);
        Assert.True(read.Contains("read 65536/65536 bytes", StringComparison.Ordinal), read);

        await driver.DetachVolumeAsync(guest.Uuid, "a", Ct);

        Assert.Empty(await driver.OpenVolumeNodesAsync(guest.Uuid, Ct));
        Assert.Null(await PciSlotOfAsync(driver, guest.Uuid, "vol-vdb-dev"));
        Assert.Equal(0, await export.ClientCountAsync());
    }

    [Fact]
    public async Task AttachVolumeAsync_ThenPowerCycle_TheNewQemuOpensTheVolumeInTheSameSlot()
    {
        await using var export = await NbdExport.StartAsync(Root, "volume-b", pattern: 0x5a, Ct);
        var driver = NewDriver();
        var guest = Guest();
        await SpawnAsync(driver, guest);
        await driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("b", "/dev/vdc", export.Connection), Ct);

        await driver.PowerOffAsync(guest.Uuid, Ct);
        await driver.PowerOnAsync(guest.Uuid, Ct);
        Pids.Add((driver.GetProcessId(guest.Uuid)!.Value, guest.Uuid));

        Assert.Equal(["vol-vdc"], await driver.OpenVolumeNodesAsync(guest.Uuid, Ct));
        Assert.Contains("0x11", await PciSlotOfAsync(driver, guest.Uuid, "vol-vdc-dev"), StringComparison.Ordinal);
        Assert.Contains("read 4096/4096 bytes", await QemuIoAsync(driver, guest.Uuid, "vol-vdc", "read -P 0x5a 0 4k"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AttachVolumeAsync_ExportUnreachable_FailsAndTheGuestHasNoVolume()
    {
        var driver = NewDriver();
        var guest = Guest();
        await SpawnAsync(driver, guest);
        var nowhere = new VolumeConnectionInfo { Host = "127.0.0.1", Port = FreePort(), Export = "volume-none" };

        await Assert.ThrowsAnyAsync<Exception>(() => driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("n", "/dev/vdb", nowhere), Ct));

        Assert.Empty(await driver.OpenVolumeNodesAsync(guest.Uuid, Ct));
        Assert.Null(await PciSlotOfAsync(driver, guest.Uuid, "vol-vdb-dev"));
        await driver.PowerOffAsync(guest.Uuid, Ct);
        await driver.PowerOnAsync(guest.Uuid, Ct);   // a definition without the volume: starts
        Pids.Add((driver.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
    }

    /// <summary>
    /// The storage path drops or holds the connection (here: a server that accepts and never greets, as QEMU's own connect
    /// would wait on it): a running guest is not held while QEMU tries, the attach fails naming the volume and its export.
    /// </summary>
    [Fact]
    public async Task AttachVolumeAsync_ExportNeverGreets_FailsNamingTheExportAndTheGuestRunsOn()
    {
        using var silent = SilentServer.Start();
        var driver = NewDriver(volumeConnectTimeout: TimeSpan.FromSeconds(1));
        var guest = Guest();
        await SpawnAsync(driver, guest);

        var failure = await Assert.ThrowsAsync<VolumeExportUnreachableException>(() =>
            driver.AttachVolumeAsync(guest.Uuid, new GuestVolume("s", "/dev/vdb", silent.Connection), Ct));

        Assert.Equal($"Volume s cannot be opened on qemu-test: the export at 127.0.0.1:{silent.Connection.Port} is not reachable from there (no answer within 1 s).", failure.Message);
        Assert.Empty(await driver.OpenVolumeNodesAsync(guest.Uuid, Ct));
        Assert.Equal(GuestPowerState.Running, driver.GetGuest(guest.Uuid)!.PowerState);
    }

    /// <summary>
    /// A migration's destination that cannot reach the volume's export refuses the guest in pre_live_migration, in the
    /// probe's time rather than QEMU's (its incoming process would wait on the connect before opening its monitor), and
    /// keeps nothing of it.
    /// </summary>
    [Fact]
    public async Task PreLiveMigrationAsync_RootVolumeExportNeverGreets_FailsNamingTheExportAndLeavesNothing()
    {
        using var silent = SilentServer.Start();
        var driver = NewDriver(volumeConnectTimeout: TimeSpan.FromSeconds(1));
        await driver.InitHostAsync(Ct);
        var guest = Guest() with { VolumeBacked = true, Volumes = [new GuestVolume("root", "/dev/vda", silent.Connection, BootIndex: 0)] };

        var failure = await Assert.ThrowsAsync<VolumeExportUnreachableException>(() =>
            driver.PreLiveMigrationAsync(guest, sharedInstancePath: false, blockMigration: false, parallelConnections: 1, Ct));

        Assert.Contains($"the export at 127.0.0.1:{silent.Connection.Port} is not reachable", failure.Message, StringComparison.Ordinal);
        Assert.Null(driver.GetGuest(guest.Uuid));
        Assert.False(Directory.Exists(driver.InstanceDirectory(guest.Uuid)), "the destination kept the guest's directory");
    }

    private QemuDriver NewDriver(TimeSpan? volumeConnectTimeout = null)
    {
        var driver = new QemuDriver(new QemuDriverOptions
        {
            HostName = "qemu-test",
            InstancesPath = Path.Combine(Root, "instances"),
            TestGuestKernelPath = fixture.KernelPath,
            Accel = "auto",
            KillGuestsOnDispose = true,
            VolumeConnectTimeout = volumeConnectTimeout ?? TimeSpan.FromSeconds(10),
        });
        Drivers.Add(driver);
        return driver;
    }

    private static GuestSpec Guest() => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        Name = "instance-" + Random.Shared.Next(1, 0xffff).ToString("x8", CultureInfo.InvariantCulture),
        Vcpus = 1,
        MemoryMb = 64,
        RootGb = 1,
        ImageRef = QemuTestGuest.DefaultImageRef,
    };

    private async Task SpawnAsync(QemuDriver driver, GuestSpec guest)
    {
        await driver.InitHostAsync(Ct);
        await driver.SpawnAsync(guest, reuseDisks: false, Ct);
        Pids.Add((driver.GetProcessId(guest.Uuid)!.Value, guest.Uuid));
    }

    /// <summary>
    /// Runs qemu-io on a block node of the guest's QEMU (HMP) and returns what it printed: an error comes back on the
    /// monitor, a command's own output goes to QEMU's stdout, its qemu.log.
    /// </summary>
    private async Task<string> QemuIoAsync(QemuDriver driver, string uuid, string node, string command)
    {
        var log = Path.Combine(driver.InstanceDirectory(uuid), "qemu.log");
        var before = File.Exists(log) ? new FileInfo(log).Length : 0;
        var monitor = (await driver.ExecuteQmpAsync(uuid, "human-monitor-command", new JsonObject { ["command-line"] = $"qemu-io {node} \"{command}\"" }, Ct)).GetString() ?? "";
        await Task.Delay(200, Ct);
        await using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(before, SeekOrigin.Begin);
        return monitor + await new StreamReader(stream).ReadToEndAsync(Ct);
    }

    /// <summary>The PCI slot (hex) of the device with this id, or null when the guest has none.</summary>
    private async Task<string?> PciSlotOfAsync(QemuDriver driver, string uuid, string id)
    {
        var buses = await driver.ExecuteQmpAsync(uuid, "query-pci", null, Ct);
        foreach (var device in buses.EnumerateArray().SelectMany(b => b.GetProperty("devices").EnumerateArray()))
        {
            if (device.TryGetProperty("qdev_id", out var q) && q.GetString() == id)
            {
                return "0x" + device.GetProperty("slot").GetInt32().ToString("x", CultureInfo.InvariantCulture);
            }
        }
        return null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A TCP server on loopback that accepts every connection and never says a word (no NBD greeting).</summary>
    private sealed class SilentServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<TcpClient> _accepted = [];

        public VolumeConnectionInfo Connection => new() { Host = "127.0.0.1", Port = ((IPEndPoint)_listener.LocalEndpoint).Port, Export = "volume-silent" };

        public static SilentServer Start()
        {
            var server = new SilentServer();
            server._listener.Start();
            _ = server.AcceptAsync();
            return server;
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync();
                    lock (_accepted)
                    {
                        _accepted.Add(client);
                    }
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // stopped
            }
        }

        public void Dispose()
        {
            _listener.Stop();
            lock (_accepted)
            {
                _accepted.ForEach(c => c.Dispose());
            }
        }
    }

    /// <summary>A 1 MiB raw file filled with one byte, exported over NBD by qemu-nbd on loopback to any number of clients.</summary>
    private sealed class NbdExport : IAsyncDisposable
    {
        private readonly Process _process;

        private NbdExport(Process process, VolumeConnectionInfo connection)
        {
            _process = process;
            Connection = connection;
        }

        public VolumeConnectionInfo Connection { get; }

        public static async Task<NbdExport> StartAsync(string root, string name, byte pattern, CancellationToken ct)
        {
            var file = Path.Combine(root, name + ".raw");
            await File.WriteAllBytesAsync(file, Enumerable.Repeat(pattern, 1 << 20).ToArray(), ct);
            var port = FreePort();
            var process = Process.Start(new ProcessStartInfo("qemu-nbd")
            {
                ArgumentList = { "-f", "raw", "-x", name, "-b", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "--persistent", "--shared=0", file },
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            }) ?? throw new InvalidOperationException("qemu-nbd did not start (qemu-utils)");
            var export = new NbdExport(process, new VolumeConnectionInfo { Host = "127.0.0.1", Port = port, Export = name });
            var started = Stopwatch.StartNew();
            while (!await IsListeningAsync(port))
            {
                if (process.HasExited || started.Elapsed > TimeSpan.FromSeconds(10))
                {
                    await export.DisposeAsync();
                    throw new InvalidOperationException($"qemu-nbd never listened on {port}: {await process.StandardError.ReadToEndAsync(ct)}");
                }
                await Task.Delay(50, ct);
            }
            return export;
        }

        /// <summary>Established connections to the export's port (the NBD clients).</summary>
        public async Task<int> ClientCountAsync()
        {
            using var ss = Process.Start(new ProcessStartInfo("ss", ["-tnH", "state", "established", $"( sport = :{Connection.Port} )"]) { RedirectStandardOutput = true })!;
            var output = await ss.StandardOutput.ReadToEndAsync();
            await ss.WaitForExitAsync();
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        }

        private static async Task<bool> IsListeningAsync(int port)
        {
            using var client = new TcpClient();
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
    }
}
