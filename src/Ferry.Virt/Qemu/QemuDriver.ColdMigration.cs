using Ferry.Core.Errors;

namespace Ferry.Virt.Qemu;

/// <summary>Cold migration and resize: power off, hand the instance directory over, boot it with the new flavor.</summary>
public sealed partial class QemuDriver
{
    // --- cold migration / resize: issue 3, part 2 ---

    public Task CheckCanReceiveAsync(GuestSpec resized, CancellationToken cancellationToken) =>
        throw NotYet(nameof(CheckCanReceiveAsync));

    public Task<Dictionary<string, string>> MigrateDiskAndPowerOffAsync(GuestSpec guest, string destHost, GuestSpec resized, CancellationToken cancellationToken) =>
        throw NotYet(nameof(MigrateDiskAndPowerOffAsync));

    public Task FinishMigrationAsync(GuestSpec resized, Dictionary<string, string> diskInfo, bool powerOn, CancellationToken cancellationToken) =>
        throw NotYet(nameof(FinishMigrationAsync));

    public Task ConfirmMigrationAsync(GuestSpec guest, CancellationToken cancellationToken) =>
        throw NotYet(nameof(ConfirmMigrationAsync));

    public Task FinishRevertMigrationAsync(GuestSpec guest, bool powerOn, CancellationToken cancellationToken) =>
        throw NotYet(nameof(FinishRevertMigrationAsync));
}
