using System.Globalization;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Ferry.Host;
using Ferry.Tests.Shared;
using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// A whole Ferry whose two compute hosts run real QEMU guests (the test guest, under KVM or TCG), each host
/// with its own instances directory. Data lives under a short /tmp path: QMP socket paths must fit 107 bytes.
/// </summary>
public class QemuFerryFixture : FerryFixture
{
    protected override string NewDataDirectory() => QemuTestDirectories.Create("fqf");

    protected override void Configure(FerryHostOptions options)
    {
        options.Driver = "qemu";
        options.Hosts = 2;
        options.TestGuestKernelPath = BuildTestGuest();
        // Guests outlive an agent restart (tests restart agents); the fixture destroys them at the end.
        options.KillGuestsOnStop = false;
        // Guests' NICs on a bridge of the fixture's own, without an address unless a test asks (the seeded gateway
        // address may sit on one bridge of the machine only).
        options.Bridge = Bridge;
        options.BridgeAddress = BridgeAddress;
    }

    /// <summary>This fixture's bridge: named after the test process, so a later run removes it if this one was killed.</summary>
    public string Bridge { get; } = TestBridges.NewName();

    /// <summary>The address the hosts put on the bridge (null: none).</summary>
    protected virtual string? BridgeAddress => null;

    public QemuDriver Driver(string host) => (QemuDriver)Ferry.Drivers[host];

    protected override async Task BeforeDisposeAsync()
    {
        foreach (var driver in Ferry.Drivers.Values.OfType<QemuDriver>())
        {
            foreach (var guest in driver.ListGuests())
            {
                await driver.DestroyAsync(guest.Uuid, destroyDisks: true, CancellationToken.None);
            }
        }
        await LinuxNetwork.DeleteAsync(Bridge, CancellationToken.None);
        await global::Ferry.Host.Roles.VolumeBackends.StopAsync(Ferry.App.Services.GetService(typeof(global::Ferry.Core.Volumes.IVolumeBackend)) as global::Ferry.Core.Volumes.IVolumeBackend);
    }

    /// <summary>tools/test-guest/build.sh (a no-op when the kernel is up to date); returns the kernel's path.</summary>
    internal static string BuildTestGuest([CallerFilePath] string sourceFile = "")
    {
        var root = new DirectoryInfo(Path.GetDirectoryName(sourceFile)!);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "tools", "test-guest", "build.sh")))
        {
            root = root.Parent;
        }
        if (root is null)
        {
            throw new InvalidOperationException("tools/test-guest/build.sh not found above " + sourceFile);
        }
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(root.FullName, "tools", "test-guest", "build.sh"));
        using var build = Process.Start(psi)!;
        var output = build.StandardOutput.ReadToEnd();
        var errors = build.StandardError.ReadToEnd();
        build.WaitForExit();
        if (build.ExitCode != 0)
        {
            throw new InvalidOperationException("build.sh failed: " + errors);
        }
        return output.Trim().Split('\n')[^1];
    }
}

/// <summary>The same, with one instances directory shared by both hosts (shared storage).</summary>
public sealed class QemuSharedFerryFixture : QemuFerryFixture
{
    protected override void Configure(FerryHostOptions options)
    {
        base.Configure(options);
        options.SharedStorage = true;
    }
}

/// <summary>QEMU flow tests share two cores: one class at a time.</summary>
[CollectionDefinition("qemu")]
public sealed class QemuCollection;

/// <summary>Bridges of QEMU test fixtures: <c>fqb</c> + the test process's pid + a number; a bridge whose process is gone is a leftover.</summary>
internal static class TestBridges
{
    private static int s_next;

    public static string NewName()
    {
        RemoveLeftovers();
        return string.Create(CultureInfo.InvariantCulture, $"fqb{Environment.ProcessId:x}-{Interlocked.Increment(ref s_next) & 0xff:x}");
    }

    /// <summary>Deletes the bridges of test processes that no longer run (a run killed before its fixtures were disposed).</summary>
    private static void RemoveLeftovers()
    {
        foreach (var device in Directory.EnumerateDirectories("/sys/class/net").Select(Path.GetFileName))
        {
            if (device is not null && device.StartsWith("fqb", StringComparison.Ordinal) && device.IndexOf('-') is > 3 and var dash
                && int.TryParse(device.AsSpan(3, dash - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var pid) && !Directory.Exists($"/proc/{pid}"))
            {
                LinuxNetwork.DeleteAsync(device, CancellationToken.None).GetAwaiter().GetResult();
            }
        }
    }
}
