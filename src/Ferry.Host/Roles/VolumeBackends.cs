using Ferry.ControlPlane.Volumes;
using Ferry.Core.Volumes;
using Ferry.Virt;
using Ferry.Virt.Storage;
using Microsoft.Extensions.Logging;

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
        var volumes = Path.GetFullPath(Path.Combine(options.DataDirectory, "volumes"));
        if (Resolve(options) == "file")
        {
            return new LocalFileVolumeBackend(volumes);
        }
        return new QemuStorageDaemonBackend(new QemuStorageDaemonOptions
        {
            VolumesDirectory = volumes,
            RunDirectory = Path.GetFullPath(Path.Combine(options.DataDirectory, "run", "volumes")),
            ListenAddress = options.ListenAddress,
        }, loggers.CreateLogger<QemuStorageDaemonBackend>());
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
}
