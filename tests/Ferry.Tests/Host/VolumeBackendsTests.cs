using Ferry.Host;
using Ferry.Host.Roles;
using Ferry.Tests.Shared;
using Ferry.Virt.Qemu;
using Ferry.Virt.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Host;

/// <summary>
/// The storage daemon that api processes share outlives each of them, so whoever ends their guests ends it too
/// (`ferry distributed --netns` at its stop): by data directory, without a backend of its own.
/// </summary>
public sealed class VolumeBackendsTests : IDisposable
{
    private readonly string _dataDirectory = TestTempNames.Directory("vb");
    private readonly CancellationTokenSource _limit = new(TimeSpan.FromSeconds(60));

    [Fact]
    [Trait("Requires", "qemu")]
    public async Task StopDaemonAsync_TheDataDirectorysDaemonRuns_ItEnds()
    {
        var options = new FerryHostOptions { DataDirectory = _dataDirectory, Driver = "qemu", VolumeBackend = "nbd" };
        int pid;
        await using (var backend = Assert.IsType<QemuStorageDaemonBackend>(VolumeBackends.Create(options, NullLoggerFactory.Instance)))
        {
            await backend.StartAsync(_limit.Token);
            pid = backend.DaemonPid!.Value;
        }
        Assert.True(QemuProcess.IsAlive(pid, ""), "the daemon outlives the backend that started it");

        await VolumeBackends.StopDaemonAsync(_dataDirectory);

        Assert.False(QemuProcess.IsAlive(pid, ""), $"qemu-storage-daemon {pid} still runs");
    }

    [Fact]
    public async Task StopDaemonAsync_NoVolumeEverServed_NothingToDoAndNothingMade()
    {
        await VolumeBackends.StopDaemonAsync(_dataDirectory);

        Assert.Empty(Directory.EnumerateFileSystemEntries(_dataDirectory));
    }

    public void Dispose()
    {
        _limit.Dispose();
        Directory.Delete(_dataDirectory, recursive: true);
    }
}
