using System.Diagnostics;
using System.Text.Json;
using Ferry.Core.Errors;
using Ferry.Core.Volumes;
using Ferry.Tests.Shared;
using Ferry.Tests.Virt.Qemu;
using Ferry.Virt;
using Ferry.Virt.Qemu;
using Ferry.Virt.Storage;
using Xunit.Abstractions;

namespace Ferry.Tests.Virt.Storage;

/// <summary>
/// The volume backend against a real qemu-storage-daemon, read and written over real NBD by qemu-img and qemu-io (Debian
/// packages qemu-system-common and qemu-utils). Each test has its own directories and daemon, on a port picked free.
/// </summary>
[Trait("Requires", "qemu")]
public sealed class QemuStorageDaemonBackendTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long GiB = 1L << 30;
    private static readonly VolumeConnector s_connector = new() { Host = "test-host", Ip = "127.0.0.1" };

    private readonly string _root = TestGuestFixture.NewTempRoot();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(90));
    private readonly List<QemuStorageDaemonBackend> _backends = [];

    private CancellationToken Ct => _timeout.Token;

    private string VolumesDirectory => Path.Combine(_root, "volumes");

    private string RunDirectory => Path.Combine(_root, "run");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        try
        {
            // Every backend of a test shares one daemon: a fresh one on the same directories ends whichever runs now.
            await using (var cleaner = new QemuStorageDaemonBackend(Options()))
            {
                await cleaner.StopDaemonAsync(CancellationToken.None);
            }
            foreach (var backend in _backends)
            {
                await backend.DisposeAsync();
            }
            // Belt and braces: nothing a test started may outlive it.
            Survivors.KillAndFail(DaemonsOfThisTest(), "qemu-storage-daemon");
        }
        finally
        {
            _timeout.Dispose();
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task CreateAsync_OneGib_ExportsSparseRawFileOfOneGibOverNbd()
    {
        var backend = NewBackend();
        var id = NewId();

        await backend.CreateAsync(id, 1, null, Ct);
        var info = await backend.ConnectionInfoAsync(id, s_connector, Ct);

        Assert.Equal(("127.0.0.1", backend.Port, $"volume-{id}", "nbd", "rw"), (info.Host, info.Port, info.Export, info.DriverVolumeType, info.AccessMode));
        Assert.NotEqual(0, info.Port);
        Assert.Equal(GiB, await VirtualSizeAsync(info));
        var file = new FileInfo(backend.VolumePath(id));
        Assert.Equal(Path.Combine(VolumesDirectory, $"volume-{id}.raw"), file.FullName);
        Assert.Equal(GiB, file.Length);
        Assert.True(await AllocatedBytesAsync(file.FullName) < 1 << 20, "a new volume is a sparse file");
        Assert.Equal([id], await backend.ListExportsAsync(Ct));
    }

    [Fact]
    public async Task CreateAsync_PatternWrittenThroughNbd_ReadsBackOnANewConnection()
    {
        var backend = NewBackend();
        var id = NewId();
        await backend.CreateAsync(id, 1, null, Ct);
        var uri = NbdUri(await backend.ConnectionInfoAsync(id, s_connector, Ct));

        await QemuIoAsync(uri, "write -P 0xab 0 64k");
        var read = await QemuIoAsync(uri, "read -P 0xab 0 64k");

        Assert.Contains("read 65536/65536 bytes at offset 0", read);
    }

    [Fact]
    public async Task ConnectionInfoAsync_TwoClientsAtOnce_BothUseOneExport()
    {
        var backend = NewBackend();
        var id = NewId();
        await backend.CreateAsync(id, 1, null, Ct);
        var uri = NbdUri(await backend.ConnectionInfoAsync(id, s_connector, Ct));
        await using var first = QemuIoSession.Open(uri);
        AssertSucceeded(await first.RunAsync("read -P 0 0 64k", Ct), "the first client's opening read");

        // A second client while the first stays connected (as both ends of a live migration do).
        await QemuIoAsync(uri, "write -P 0xab 0 64k");
        var firstSees = await first.RunAsync("read -P 0xab 0 64k", Ct);
        AssertSucceeded(await first.RunAsync("write -P 0xcd 1M 64k", Ct), "the first client's write");
        var secondSees = await QemuIoAsync(uri, "read -P 0xcd 1M 64k");

        AssertSucceeded(firstSees, "the first client reading the second's write");
        Assert.Contains("read 65536/65536 bytes at offset 1048576", secondSees);
        Assert.False(first.HasExited, "the first client lost its connection");
    }

    [Fact]
    public async Task ExtendAsync_WhileClientConnected_ConnectionsSeeNewSizeAndKeptData()
    {
        var backend = NewBackend();
        var id = NewId();
        await backend.CreateAsync(id, 1, null, Ct);
        var uri = NbdUri(await backend.ConnectionInfoAsync(id, s_connector, Ct));
        await QemuIoAsync(uri, "write -P 0xab 0 64k");
        await using var connected = QemuIoSession.Open(uri);
        AssertSucceeded(await connected.RunAsync("read -P 0xab 0 64k", Ct), "the connected client's read");

        await backend.ExtendAsync(id, 2, Ct);

        // QEMU 7.2 cannot resize under a live NBD export: the export was made again, so the connected client was cut
        // (a guest reconnects) and every connection from now on sees 2 GiB.
        Assert.Equal(2 * GiB, await VirtualSizeAsync(await backend.ConnectionInfoAsync(id, s_connector, Ct)));
        Assert.Equal(2 * GiB, new FileInfo(backend.VolumePath(id)).Length);
        await QemuIoAsync(uri, "read -P 0xab 0 64k");
        await QemuIoAsync(uri, "write -P 0xef 1536M 64k");
        await QemuIoAsync(uri, "read -P 0xef 1536M 64k");
        Assert.Equal([id], await backend.ListExportsAsync(Ct));
    }

    [Fact]
    public async Task ExtendAsync_SameOrSmallerSize_KeepsSizeOrThrowsArgumentException()
    {
        var backend = NewBackend();
        var id = NewId();
        await backend.CreateAsync(id, 2, null, Ct);

        await backend.ExtendAsync(id, 2, Ct);
        var shrink = await Assert.ThrowsAsync<ArgumentException>(() => backend.ExtendAsync(id, 1, Ct));

        Assert.Contains("cannot shrink", shrink.Message);
        Assert.Equal(2 * GiB, await VirtualSizeAsync(await backend.ConnectionInfoAsync(id, s_connector, Ct)));
    }

    [Fact]
    public async Task DeleteAsync_ExportedVolume_RemovesExportAndFileAndSecondDeleteIsNoOp()
    {
        var backend = NewBackend();
        var id = NewId();
        var kept = NewId();
        await backend.CreateAsync(id, 1, null, Ct);
        await backend.CreateAsync(kept, 1, null, Ct);
        var info = await backend.ConnectionInfoAsync(id, s_connector, Ct);

        await backend.DeleteAsync(id, Ct);
        await backend.DeleteAsync(id, Ct);

        Assert.False(File.Exists(backend.VolumePath(id)));
        Assert.Equal([kept], await backend.ListExportsAsync(Ct));
        var (exitCode, _, stderr) = await HostCommand.RunAsync("qemu-img", ["info", "--output=json", NbdUri(info)], "qemu-utils", Ct);
        Assert.True(exitCode != 0, "the deleted export still answers");
        output.WriteLine(stderr);
        await Assert.ThrowsAsync<NotFoundException>(() => backend.ConnectionInfoAsync(id, s_connector, Ct));
    }

    [Fact]
    public async Task StartAsync_NewBackendOnSameDirectories_AdoptsRunningDaemonAndItsExports()
    {
        var first = NewBackend();
        var id = NewId();
        await first.CreateAsync(id, 1, null, Ct);
        await QemuIoAsync(NbdUri(await first.ConnectionInfoAsync(id, s_connector, Ct)), "write -P 0xab 0 64k");
        var pid = first.DaemonPid!.Value;
        await first.DisposeAsync(); // the API process going away

        var second = NewBackend();
        await second.StartAsync(Ct);

        Assert.True(QemuProcess.IsAlive(pid, RunDirectory), "the daemon did not outlive the backend that started it");
        Assert.Equal(pid, SessionOf(pid)); // its own session: a signal to the API's process group or session does not reach it
        Assert.Equal(pid, second.DaemonPid);
        Assert.Equal(first.Port, second.Port);
        Assert.Equal([id], await second.ListExportsAsync(Ct));
        await QemuIoAsync(NbdUri(await second.ConnectionInfoAsync(id, s_connector, Ct)), "read -P 0xab 0 64k");
    }

    [Fact]
    public async Task StartAsync_AfterDaemonKilled_StartsNewDaemonOnSamePortAndExportsEveryVolume()
    {
        var first = NewBackend();
        var a = NewId();
        var b = NewId();
        await first.CreateAsync(a, 1, null, Ct);
        await first.CreateAsync(b, 1, null, Ct);
        await QemuIoAsync(NbdUri(await first.ConnectionInfoAsync(a, s_connector, Ct)), "write -P 0xaa 0 64k");
        await QemuIoAsync(NbdUri(await first.ConnectionInfoAsync(b, s_connector, Ct)), "write -P 0xbb 0 64k");
        var pid = first.DaemonPid!.Value;
        using (var daemon = Process.GetProcessById(pid))
        {
            daemon.Kill(); // SIGKILL: no clean-up of its pid file or socket
        }
        await WaitUntilAsync(() => !QemuProcess.IsAlive(pid, RunDirectory), "the killed daemon to exit");

        var second = NewBackend();
        await second.StartAsync(Ct);

        Assert.NotEqual(pid, second.DaemonPid);
        Assert.Equal(first.Port, second.Port);
        Assert.Equal(new[] { a, b }.Order(StringComparer.Ordinal), await second.ListExportsAsync(Ct));
        await QemuIoAsync(NbdUri(await second.ConnectionInfoAsync(a, s_connector, Ct)), "read -P 0xaa 0 64k");
        await QemuIoAsync(NbdUri(await second.ConnectionInfoAsync(b, s_connector, Ct)), "read -P 0xbb 0 64k");
    }

    [Fact]
    public async Task CreateAsync_FromQcow2Image_GivesRawVolumeWithImageData()
    {
        var image = Path.Combine(_root, "image.qcow2");
        await RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"]);
        await RunAsync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 1M 64k", image]);
        var backend = NewBackend();
        var id = NewId();

        await backend.CreateAsync(id, 1, image, Ct);

        using var info = JsonDocument.Parse(await RunAsync("qemu-img", ["info", "-U", "--output=json", backend.VolumePath(id)]));
        Assert.Equal("raw", info.RootElement.GetProperty("format").GetString());
        Assert.Equal(GiB, info.RootElement.GetProperty("virtual-size").GetInt64());
        var uri = NbdUri(await backend.ConnectionInfoAsync(id, s_connector, Ct));
        await QemuIoAsync(uri, "read -P 0x5a 1M 64k");
        await QemuIoAsync(uri, "read -P 0 0 64k");
        await QemuIoAsync(uri, "read -P 0 512M 64k");
        Assert.Empty(Directory.GetFiles(VolumesDirectory, "*.tmp"));
    }

    [Fact]
    public async Task CreateAsync_ImageLargerThanVolume_ThrowsBadRequestAndLeavesNoFile()
    {
        var image = Path.Combine(_root, "big.qcow2");
        await RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", image, "2G"]);
        var backend = NewBackend();
        var id = NewId();

        await Assert.ThrowsAsync<BadRequestException>(() => backend.CreateAsync(id, 1, image, Ct));

        Assert.Empty(Directory.GetFiles(VolumesDirectory));
        Assert.Empty(await backend.ListExportsAsync(Ct));
    }

    [Fact]
    public async Task CreateAsync_SameIdTwice_KeepsDataAndExport()
    {
        var backend = NewBackend();
        var id = NewId();
        await backend.CreateAsync(id, 1, null, Ct);
        var uri = NbdUri(await backend.ConnectionInfoAsync(id, s_connector, Ct));
        await QemuIoAsync(uri, "write -P 0xab 0 64k");

        await backend.CreateAsync(id, 1, null, Ct);

        await QemuIoAsync(uri, "read -P 0xab 0 64k");
        Assert.Equal([id], await backend.ListExportsAsync(Ct));
    }

    [Fact]
    public async Task StartAsync_VolumeFileRemovedBehindTheDaemon_RemovesItsExport()
    {
        var first = NewBackend();
        var kept = NewId();
        var gone = NewId();
        await first.CreateAsync(kept, 1, null, Ct);
        await first.CreateAsync(gone, 1, null, Ct);
        Assert.Equal(new[] { kept, gone }.Order(StringComparer.Ordinal), await first.ListExportsAsync(Ct));
        await first.DisposeAsync();
        File.Delete(first.VolumePath(gone));

        var second = NewBackend();
        await second.StartAsync(Ct);

        Assert.Equal(first.DaemonPid, second.DaemonPid);
        Assert.Equal([kept], await second.ListExportsAsync(Ct));
    }

    [Fact]
    public async Task StartAsync_TwoBackendsAtOnce_ShareOneDaemon()
    {
        var first = NewBackend();
        var second = NewBackend();

        await Task.WhenAll(first.StartAsync(Ct), second.StartAsync(Ct));

        Assert.Equal(first.DaemonPid, second.DaemonPid);
        Assert.Equal(first.Port, second.Port);
        Assert.Equal([first.DaemonPid!.Value], DaemonsOfThisTest());
    }

    [Fact]
    public async Task StartAsync_MissingBinary_NamesTheDebianPackage()
    {
        var backend = NewBackend(Options() with { Binary = "/nonexistent/qemu-storage-daemon" });

        var ex = await Assert.ThrowsAsync<FerryException>(() => backend.StartAsync(Ct));

        Assert.Contains("qemu-system-common", ex.Message);
    }

    [Fact]
    public async Task ConnectionInfoAsync_UnknownVolume_ThrowsNotFound()
    {
        var backend = NewBackend();

        var ex = await Assert.ThrowsAsync<NotFoundException>(() => backend.ConnectionInfoAsync(NewId(), s_connector, Ct));

        Assert.Contains("has no storage", ex.Message);
    }

    private QemuStorageDaemonOptions Options() => new() { VolumesDirectory = VolumesDirectory, RunDirectory = RunDirectory };

    private QemuStorageDaemonBackend NewBackend(QemuStorageDaemonOptions? options = null)
    {
        var backend = new QemuStorageDaemonBackend(options ?? Options(), new TestOutputLogger<QemuStorageDaemonBackend>(output, $"backend{_backends.Count + 1}"));
        _backends.Add(backend);
        return backend;
    }

    private static string NewId() => Guid.NewGuid().ToString();

    private static string NbdUri(VolumeConnectionInfo info) => $"nbd://{info.Host}:{info.Port}/{info.Export}";

    private async Task<long> VirtualSizeAsync(VolumeConnectionInfo info)
    {
        using var json = JsonDocument.Parse(await RunAsync("qemu-img", ["info", "--output=json", NbdUri(info)]));
        return json.RootElement.GetProperty("virtual-size").GetInt64();
    }

    private async Task<long> AllocatedBytesAsync(string path) =>
        long.Parse((await RunAsync("du", ["--block-size=1", path])).Split('\t')[0], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>One qemu-io command on a new NBD connection; fails the test unless it succeeded (a pattern read matched).</summary>
    private async Task<string> QemuIoAsync(string uri, string command)
    {
        var answer = await RunAsync("qemu-io", ["-f", "raw", "-c", command, uri]);
        AssertSucceeded(answer, $"qemu-io '{command}' on {uri}");
        return answer;
    }

    private static void AssertSucceeded(string answer, string what) =>
        Assert.True(answer.Contains(" ops; ", StringComparison.Ordinal) && !answer.Contains("failed", StringComparison.Ordinal), $"{what}: {answer}");

    private async Task<string> RunAsync(string binary, IReadOnlyList<string> args)
    {
        var (exitCode, stdout, stderr) = await HostCommand.RunAsync(binary, args, "qemu-utils", Ct);
        Assert.True(exitCode == 0, $"{binary} {string.Join(' ', args)} exited {exitCode}: {stderr}{stdout}");
        return stdout;
    }

    private async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"Timed out waiting for {what}.");
            await Task.Delay(20, Ct);
        }
    }

    /// <summary>The session id of a process (the sixth field of <c>/proc/&lt;pid&gt;/stat</c>).</summary>
    private static int SessionOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[3], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The live qemu-storage-daemon processes serving this test's run directory.</summary>
    private List<int> DaemonsOfThisTest() =>
        [.. Directory.GetDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && QemuProcess.IsAlive(pid, "path=" + Path.Combine(RunDirectory, "qmp.sock")))];
}
