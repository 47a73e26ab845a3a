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
        if (Resolve(options) == "file")
        {
            return new LocalFileVolumeBackend(VolumesDirectory(options.DataDirectory));
        }
        return new QemuStorageDaemonBackend(new QemuStorageDaemonOptions
        {
            VolumesDirectory = VolumesDirectory(options.DataDirectory),
            RunDirectory = RunDirectory(options.DataDirectory),
            ListenAddress = options.ListenAddress,
        }, loggers.CreateLogger<QemuStorageDaemonBackend>());
    }

    private static string VolumesDirectory(string dataDirectory) => Path.GetFullPath(Path.Combine(dataDirectory, "volumes"));

    private static string RunDirectory(string dataDirectory) => Path.GetFullPath(Path.Combine(dataDirectory, "run", "volumes"));

    /// <summary><c>nbd</c> or <c>file</c>: auto is nbd for QEMU hosts where qemu-storage-daemon is installed (fake guests open nothing).</summary>
    public static string Resolve(FerryHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.VolumeBackend switch
        {
            "nbd" or "file" => options.VolumeBackend,
            _ => options.Driver == "qemu" && OnPath("qemu-storage-daemon") ? "nbd" : "file",
        };
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));

    /// <summary>
    /// Ends the storage daemon that the api processes of <paramref name="dataDirectory"/> share, if one runs: at the stop of a
    /// `ferry distributed` whose guests end with it, once every api process is gone (none of them owns the daemon).
    /// </summary>
    public static async Task StopDaemonAsync(string dataDirectory)
    {
        if (!Directory.Exists(RunDirectory(dataDirectory)))
        {
            return;
        }
        await using var daemon = new QemuStorageDaemonBackend(new QemuStorageDaemonOptions
        {
            VolumesDirectory = VolumesDirectory(dataDirectory),
            RunDirectory = RunDirectory(dataDirectory),
        });
        await daemon.StopDaemonAsync(CancellationToken.None);
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
