using Ferry.ControlPlane.Volumes;
using Ferry.Core.Volumes;
using Ferry.Virt;
using Ferry.Virt.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Host.Roles;

/// <summary>The volume service's backend as <see cref="FerryHostOptions.VolumeBackend"/> asks.</summary>
public static class VolumeBackends
{
    /// <summary>
    /// The daemon starts with the first volume and outlives this process (guests keep their volumes open across a
    /// restart); <see cref="StopAsync"/> ends it where guests end with Ferry.
    /// </summary>
    public static IVolumeBackend Create(FerryHostOptions options, ILoggerFactory loggers)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (Resolve(options) == "file")
        {
            return new LocalFileVolumeBackend(VolumesDirectory(options.DataDirectory));
        }
        return new QemuStorageDaemonBackend(DaemonOptions(options.DataDirectory) with { ListenAddress = options.ListenAddress },
            loggers.CreateLogger<QemuStorageDaemonBackend>());
    }

    /// <summary><c>nbd</c> or <c>file</c>: auto is nbd for QEMU hosts where qemu-storage-daemon is installed (fake guests open nothing).</summary>
    public static string Resolve(FerryHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.VolumeBackend switch
        {
            "nbd" or "file" => options.VolumeBackend,
            _ => options.Driver == "qemu" && ExecutablePath.Exists("qemu-storage-daemon") ? "nbd" : "file",
        };
    }

    /// <summary>Ends the storage daemon of <paramref name="backend"/>, if it has one (at a stop that ends the guests too).</summary>
    public static async Task StopAsync(IVolumeBackend? backend)
    {
        if (backend is QemuStorageDaemonBackend daemon)
        {
            await daemon.StopDaemonAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// Ends the storage daemon the api processes of <paramref name="dataDirectory"/> started or adopted, if one runs: for a
    /// process that serves no volumes itself (the distributed launcher, once its api processes have stopped), at a stop
    /// that ends the guests too. Nothing to do for the file backend, or when no daemon runs.
    /// </summary>
    public static async Task StopDaemonAsync(string dataDirectory, ILogger<QemuStorageDaemonBackend>? logger = null)
    {
        var options = DaemonOptions(dataDirectory);
        if (!Directory.Exists(options.RunDirectory))
        {
            return; // never an NBD backend here (and perhaps a path too long for one)
        }
        await using var backend = new QemuStorageDaemonBackend(options, logger ?? NullLogger<QemuStorageDaemonBackend>.Instance);
        if (File.Exists(backend.PidFilePath))
        {
            await backend.StopDaemonAsync(CancellationToken.None);
        }
    }

    private static string VolumesDirectory(string dataDirectory) => Path.GetFullPath(Path.Combine(dataDirectory, "volumes"));

    /// <summary>Every process of one data directory shares its daemon through the run directory.</summary>
    private static QemuStorageDaemonOptions DaemonOptions(string dataDirectory) => new()
    {
        VolumesDirectory = VolumesDirectory(dataDirectory),
        RunDirectory = Path.GetFullPath(Path.Combine(dataDirectory, "run", "volumes")),
    };
}
