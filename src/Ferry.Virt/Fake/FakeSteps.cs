namespace Ferry.Virt.Fake;

/// <summary>
/// Names of the fake driver's steps, as armed in <see cref="FakeFaultInjector"/>. Each public driver
/// method checks its own step first; the names follow nova/virt/driver.py method names.
/// </summary>
public static class FakeSteps
{
    public const string Spawn = "spawn";
    public const string Destroy = "destroy";
    public const string PowerOff = "power_off";
    public const string PowerOn = "power_on";
    public const string PreLiveMigration = "pre_live_migration";
    /// <summary>Checked once when the copy starts; an injected failure is thrown to the caller.</summary>
    public const string LiveMigration = "live_migration";
    /// <summary>Checked before every pre-copy round; an injected failure ends the migration as Failed.</summary>
    public const string LiveMigrationRound = "live_migration_round";
    public const string PostLiveMigrationAtSource = "post_live_migration_at_source";
    public const string PostLiveMigrationAtDestination = "post_live_migration_at_destination";
    public const string RollbackLiveMigrationAtDestination = "rollback_live_migration_at_destination";
    public const string CheckCanReceive = "check_can_receive";
    public const string MigrateDiskAndPowerOff = "migrate_disk_and_power_off";
    public const string FinishMigration = "finish_migration";
    public const string ConfirmMigration = "confirm_migration";
    public const string FinishRevertMigration = "finish_revert_migration";
    /// <summary>Not part of <see cref="All"/>: no move attaches or detaches a volume.</summary>
    public const string AttachVolume = "attach_volume";
    /// <inheritdoc cref="AttachVolume"/>
    public const string DetachVolume = "detach_volume";
    /// <summary>Not part of <see cref="All"/>: no move reboots a guest.</summary>
    public const string Reboot = "reboot";
    /// <summary>
    /// Checked by the source before every chunk of the pages a post-copy migration still sends; each armed failure
    /// breaks the stream once (and a delay holds the migration in post-copy), and the source then asks the destination to listen again
    /// (<see cref="RecoverPostCopyAtDestination"/>). Not part of <see cref="All"/>: only a migration that switched
    /// to post-copy checks it, so the default flows would leave it armed and test nothing.
    /// </summary>
    public const string PostCopyStream = "post_copy_stream";
    /// <summary>
    /// The destination's side of resuming a broken post-copy stream. Not part of <see cref="All"/>, for the same
    /// reason as <see cref="PostCopyStream"/>: nothing calls it unless that stream broke.
    /// </summary>
    public const string RecoverPostCopyAtDestination = "recover_post_copy_at_destination";

    public static IReadOnlyList<string> All { get; } =
    [
        Spawn, Destroy, PowerOff, PowerOn, PreLiveMigration, LiveMigration, LiveMigrationRound,
        PostLiveMigrationAtSource, PostLiveMigrationAtDestination, RollbackLiveMigrationAtDestination,
        CheckCanReceive, MigrateDiskAndPowerOff, FinishMigration, ConfirmMigration, FinishRevertMigration,
    ];
}
