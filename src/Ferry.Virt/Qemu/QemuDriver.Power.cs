using System.Diagnostics;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;

namespace Ferry.Virt.Qemu;

/// <summary>
/// Pause (QMP <c>stop</c>/<c>cont</c>) and suspend, which saves the guest as libvirt's managed save does for Nova:
/// the vCPUs stop, the machine state is migrated into a file on this host, QEMU quits; resume starts QEMU with
/// <c>-incoming defer</c>, feeds it the file and lets it run on from where it stopped. QEMU 7.2 has no
/// <c>file:</c> migration URI, hence <c>exec:cat</c>.
/// </summary>
public sealed partial class QemuDriver
{
    private static readonly TimeSpan s_saveTimeout = TimeSpan.FromMinutes(5);

    /// <summary>The saved state of a suspended guest: per host, beside its definition.</summary>
    public string ManagedSavePath(string uuid) => Path.Combine(RuntimeDirectory(uuid), "managed.save");

    public Task PauseAsync(string uuid, CancellationToken cancellationToken) =>
        WithRunningGuestAsync(uuid, GuestPowerState.Running, "paused", async (guest, process) =>
        {
            await process.Qmp.ExecuteAsync("stop", null, cancellationToken);
            guest.PowerState = await QueryStatusAsync(process, cancellationToken);
        }, cancellationToken);

    public Task UnpauseAsync(string uuid, CancellationToken cancellationToken) =>
        WithRunningGuestAsync(uuid, GuestPowerState.Paused, "unpaused", async (guest, process) =>
        {
            await process.Qmp.ExecuteAsync("cont", null, cancellationToken);
            guest.PowerState = await QueryStatusAsync(process, cancellationToken);
        }, cancellationToken);

    public Task SuspendAsync(string uuid, CancellationToken cancellationToken) =>
        WithRunningGuestAsync(uuid, GuestPowerState.Running, "suspended", async (guest, process) =>
        {
            var file = ManagedSavePath(uuid);
            var partial = file + ".part";
            File.Delete(partial);
            await process.Qmp.ExecuteAsync("stop", null, cancellationToken);
            try
            {
                await process.Qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = $"exec:cat > {ShellQuote(partial)}" }, cancellationToken);
                await WaitForMigrationAsync(process, uuid, "save", cancellationToken);
            }
            catch
            {
                // Not saved: the guest runs on as before.
                File.Delete(partial);
                await process.Qmp.ExecuteAsync("cont", null, CancellationToken.None);
                throw;
            }
            File.Move(partial, file, overwrite: true);
            await StopGuestAsync(guest, cancellationToken);
            guest.PowerState = GuestPowerState.Suspended;
            LogSuspended(uuid, file);
        }, cancellationToken);

    public async Task ResumeAsync(string uuid, CancellationToken cancellationToken)
    {
        var guest = Find(uuid);
        await guest.Lock.WaitAsync(cancellationToken);
        try
        {
            var file = ManagedSavePath(uuid);
            if (guest.Process is { HasExited: false } || !File.Exists(file))
            {
                throw new ConflictException($"Guest {uuid} on {_options.HostName} is {guest.PowerState}, not suspended: it cannot be resumed.");
            }
            var process = await StartQemuAsync(LaunchSpec(guest.Spec) with { IncomingUri = "defer" }, cancellationToken);
            guest.Process = process;
            try
            {
                await process.Qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = $"exec:cat {ShellQuote(file)}" }, cancellationToken);
                await WaitForMigrationAsync(process, uuid, "restore", cancellationToken);
                await process.Qmp.ExecuteAsync("cont", null, cancellationToken);
                guest.PowerState = await QueryStatusAsync(process, cancellationToken);
            }
            catch
            {
                // The saved state stays for another try; this QEMU goes.
                await StopGuestAsync(guest, CancellationToken.None);
                guest.PowerState = GuestPowerState.Suspended;
                throw;
            }
            StartEventPump(guest, process);
            File.Delete(file);
            LogResumed(uuid, process.Pid);
        }
        finally
        {
            guest.Lock.Release();
        }
    }

    private async Task WithRunningGuestAsync(string uuid, GuestPowerState expected, string what, Func<QemuGuest, QemuProcess, Task> change, CancellationToken cancellationToken)
    {
        var guest = Find(uuid);
        await guest.Lock.WaitAsync(cancellationToken);
        try
        {
            if (guest.Process is not { HasExited: false } process)
            {
                throw new ConflictException($"Guest {uuid} on {_options.HostName} has no running QEMU: it cannot be {what}.");
            }
            var actual = await QueryStatusAsync(process, cancellationToken);
            if (actual != expected)
            {
                throw new ConflictException($"Guest {uuid} on {_options.HostName} is {actual}, not {expected}: it cannot be {what}.");
            }
            await change(guest, process);
        }
        finally
        {
            guest.Lock.Release();
        }
    }

    /// <summary>Polls query-migrate until a save or restore ends; throws with QEMU's error when it fails.</summary>
    private static async Task WaitForMigrationAsync(QemuProcess process, string uuid, string what, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var info = await process.Qmp.ExecuteAsync("query-migrate", null, cancellationToken);
            switch (Str(info, "status"))
            {
                case "completed":
                    return;
                case "failed" or "cancelled":
                    throw new FerryException($"The {what} of guest {uuid} failed: {Str(info, "error-desc") ?? "QEMU gave no reason"}.");
            }
            if (clock.Elapsed > s_saveTimeout || process.HasExited)
            {
                throw new FerryException($"The {what} of guest {uuid} did not complete within {s_saveTimeout.TotalMinutes} minutes.");
            }
            await Task.Delay(s_migrationPollInterval, cancellationToken);
        }
    }

    private static string ShellQuote(string path) => "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
