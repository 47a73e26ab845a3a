namespace Ferry.Virt;

/// <summary>
/// The hypervisor seam (nova/virt/driver.py). One driver instance per compute host.
/// Contract:
/// <list type="bullet">
/// <item>Guests are identified by instance uuid. The driver owns guest processes and the files under
/// its instances path; the compute agent owns everything else (state, placement, RPC).</item>
/// <item>Expected failures are thrown as <c>Ferry.Core.Errors.FerryException</c> subclasses; anything
/// else is a bug or an injected fault and is treated as an error of the step that called it.</item>
/// <item>Methods are safe to call concurrently for different guests.</item>
/// <item>Live migration never leaves two running copies: after <see cref="LiveMigrationOutcome.Completed"/>
/// the source copy is paused until <see cref="PostLiveMigrationAtSourceAsync"/> removes it.</item>
/// </list>
/// </summary>
public interface IComputeDriver
{
    string HypervisorType { get; }

    /// <summary>Prepares the host (creates the instances path) and returns the guests already defined on it.</summary>
    Task<IReadOnlyList<GuestInfo>> InitHostAsync(CancellationToken cancellationToken);

    HostResources GetHostResources();

    GuestInfo? GetGuest(string uuid);

    /// <summary>
    /// Raised with a guest's uuid when it stopped by itself, not through this driver: its process exited (the guest
    /// powered off, or the process was killed) or it panicked. Nova's lifecycle events (the virt driver's emit_event):
    /// the agent syncs that instance's power state at once instead of at its next periodic sync. Handlers must not block.
    /// </summary>
    event Action<string>? GuestStopped;

    IReadOnlyList<GuestInfo> ListGuests();

    /// <summary>Creates the guest's disks from the image (or reuses them when <paramref name="reuseDisks"/>) and starts it.</summary>
    Task SpawnAsync(GuestSpec guest, bool reuseDisks, CancellationToken cancellationToken);

    /// <summary>Stops and undefines the guest; deletes its files when <paramref name="destroyDisks"/>. No error if absent.</summary>
    Task DestroyAsync(string uuid, bool destroyDisks, CancellationToken cancellationToken);

    Task PowerOffAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>
    /// Gives the guest the volume as a disk (Nova's attach_volume): hot-plugged when it runs, and part of its definition
    /// from then on, so every later start opens it. Attaching a volume it has is a no-op.
    /// </summary>
    Task AttachVolumeAsync(string uuid, GuestVolume volume, CancellationToken cancellationToken);

    /// <summary>Takes the volume's disk from the guest (detach_volume; a running guest must release it). No error if it has none.</summary>
    Task DetachVolumeAsync(string uuid, string volumeId, CancellationToken cancellationToken);

    Task PowerOnAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>Freezes the running guest's vCPUs in memory (QMP <c>stop</c>); it stays defined and holds its memory.</summary>
    Task PauseAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>Lets a paused guest run on (QMP <c>cont</c>).</summary>
    Task UnpauseAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>
    /// Saves the running guest's state to a file on the host and ends its process (libvirt's managed save,
    /// which Nova's suspend uses); the guest reports <see cref="GuestPowerState.Suspended"/> until resumed.
    /// </summary>
    Task SuspendAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>Starts a suspended guest again from its saved state, running from where it stopped; the file goes.</summary>
    Task ResumeAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>
    /// Restarts the guest: <paramref name="hard"/> resets it at once; soft asks it to shut down (ACPI) and resets
    /// it when it does not within the driver's grace period (Nova's wait_soft_reboot_seconds). A stopped guest starts.
    /// </summary>
    Task RebootAsync(string uuid, bool hard, CancellationToken cancellationToken);

    /// <summary>The guest's serial console log (its last <see cref="ConsoleLog.MaxBytes"/>); NotFound when the guest is not here.</summary>
    Task<string> GetConsoleOutputAsync(string uuid, CancellationToken cancellationToken);

    // --- shared storage detection (a test file created on one host, looked for on the other) ---

    /// <summary>Creates a uniquely named file in the instances path and returns its name.</summary>
    string CreateSharedStorageTestFile();

    bool CheckSharedStorageTestFile(string filename);

    void CleanupSharedStorageTestFile(string filename);

    /// <summary>True when the guest's files are visible here (evacuation on shared storage).</summary>
    bool InstanceOnDisk(string uuid);

    /// <summary>
    /// True when the guest has a local root disk that a live migration must copy (or find on shared storage). A config drive
    /// does not count: it is a pure function of the spec, written again on the destination.
    /// </summary>
    bool HasLocalDisks(GuestSpec guest);

    // --- live migration ---

    /// <summary>
    /// Destination side: prepares to receive the guest (incoming process, disks) and returns where to send it;
    /// the memory comes over <paramref name="parallelConnections"/> streams (the plan's, chosen by the source).
    /// </summary>
    Task<string> PreLiveMigrationAsync(GuestSpec guest, bool sharedInstancePath, bool blockMigration, int parallelConnections, CancellationToken cancellationToken);

    /// <summary>
    /// Source side: runs the migration to completion, reporting progress through <paramref name="callbacks"/>.
    /// Returns how it ended; <see cref="LiveMigrationOutcome.Completed"/> means the destination runs the guest.
    /// </summary>
    Task<LiveMigrationOutcome> LiveMigrateAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken);

    /// <summary>Cancels the running migration of the guest; it ends as <see cref="LiveMigrationOutcome.Cancelled"/>. False if none runs or it is in post-copy.</summary>
    bool AbortLiveMigration(string uuid);

    /// <summary>Makes a running migration finish: switches to post-copy when permitted, else pauses the guest. False if none runs.</summary>
    bool ForceCompleteLiveMigration(string uuid);

    /// <summary>
    /// Source side, after the agent restarted under a post-copy migration that the hypervisor carried on alone:
    /// watches it again as <see cref="LiveMigrateAsync"/> would from the switch on (progress, stream recovery)
    /// until it ends. <see cref="LiveMigrationOutcome.Completed"/> means the destination runs the guest;
    /// <see cref="LiveMigrationOutcome.Failed"/> that the hypervisor has no such migration any more (a hypervisor
    /// that runs migrations only under a monitor answers it at once). Throws when the post-copy is lost.
    /// </summary>
    Task<LiveMigrationOutcome> ReattachLiveMigrationAsync(GuestSpec guest, LiveMigrationPlan plan, IDriverCallbacks callbacks, CancellationToken cancellationToken);

    /// <summary>Source side after success: removes the (paused) source copy; deletes files unless shared.</summary>
    Task PostLiveMigrationAtSourceAsync(GuestSpec guest, bool sharedInstancePath, CancellationToken cancellationToken);

    /// <summary>Destination side after success: the guest is the running one now.</summary>
    Task PostLiveMigrationAtDestinationAsync(GuestSpec guest, CancellationToken cancellationToken);

    /// <summary>
    /// Destination side, when the stream of a post-copy migration broke (the guest runs here but waits for pages
    /// only the source has): makes the incoming guest listen again and returns the address the source resumes to.
    /// Throws when it cannot, e.g. because the incoming copy is gone.
    /// </summary>
    Task<string> RecoverPostCopyAtDestinationAsync(string uuid, CancellationToken cancellationToken);

    /// <summary>
    /// Why the guest's hypervisor process ended on its own, if it did: its last words as a failure (message, and details
    /// an operator can act on); null while it runs, after a stop asked for, or when the driver cannot tell.
    /// </summary>
    Task<Ferry.Core.Errors.FerryException?> GuestExitReportAsync(string uuid, CancellationToken cancellationToken) =>
        Task.FromResult<Ferry.Core.Errors.FerryException?>(null);

    /// <summary>Destination side after failure: removes the incoming guest (and its files unless shared).</summary>
    Task RollbackLiveMigrationAtDestinationAsync(GuestSpec guest, bool destroyDisks, CancellationToken cancellationToken);

    // --- cold migration / resize ---

    /// <summary>
    /// Destination side, before a cold migration or resize starts: refuses a guest this host cannot
    /// run now (Nova's resize claim), so the conductor can try an alternate host instead.
    /// </summary>
    Task CheckCanReceiveAsync(GuestSpec resized, CancellationToken cancellationToken);

    /// <summary>
    /// Source side: powers the guest off and hands its disks over for <paramref name="destHost"/>.
    /// The source copy is kept until confirm. Returns what the destination needs to take the disks.
    /// </summary>
    Task<Dictionary<string, string>> MigrateDiskAndPowerOffAsync(GuestSpec guest, string destHost, GuestSpec resized, CancellationToken cancellationToken);

    /// <summary>Destination side: builds the guest from the handed-over disks with the new size.</summary>
    Task FinishMigrationAsync(GuestSpec resized, Dictionary<string, string> diskInfo, bool powerOn, CancellationToken cancellationToken);

    /// <summary>Source side after confirm: deletes the kept source copy.</summary>
    Task ConfirmMigrationAsync(GuestSpec guest, CancellationToken cancellationToken);

    /// <summary>Source side after revert: restores the kept source copy and starts it when <paramref name="powerOn"/>.</summary>
    Task FinishRevertMigrationAsync(GuestSpec guest, bool powerOn, CancellationToken cancellationToken);
}
