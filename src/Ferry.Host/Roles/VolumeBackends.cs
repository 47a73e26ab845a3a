using Ferry.ControlPlane.Volumes;
using Ferry.Core.Volumes;
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
        var nbd = options.VolumeBackend switch
        {
            "nbd" => true,
            "file" => false,
            // Fake guests open nothing: the daemon is for QEMU hosts.
            _ => options.Driver == "qemu" && OnPath("qemu-storage-daemon"),
        };
        if (!nbd)
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

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));

    /// <summary>Ends the storage daemon of <paramref name="backend"/>, if it has one (at a stop that ends the guests too).</summary>
    public static async Task StopAsync(IVolumeBackend? backend)
    {
        if (backend is QemuStorageDaemonBackend daemon)
        {
            await daemon.StopDaemonAsync(CancellationToken.None);
        }
    }
}
