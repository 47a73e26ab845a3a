namespace Ferry.Core.Domain;

/// <summary>The strings Nova uses for the state enums (also their JSON names).</summary>
public static class StateNames
{
    public static string ToNova(this VmState state) => state switch
    {
        VmState.Building => "building",
        VmState.Active => "active",
        VmState.Paused => "paused",
        VmState.Stopped => "stopped",
        VmState.Resized => "resized",
        VmState.Error => "error",
        VmState.Deleted => "deleted",
        VmState.Suspended => "suspended",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    public static string ToNova(this TaskState state) => state switch
    {
        TaskState.Scheduling => "scheduling",
        TaskState.Spawning => "spawning",
        TaskState.Migrating => "migrating",
        TaskState.ResizePrep => "resize_prep",
        TaskState.ResizeMigrating => "resize_migrating",
        TaskState.ResizeMigrated => "resize_migrated",
        TaskState.ResizeFinish => "resize_finish",
        TaskState.ResizeReverting => "resize_reverting",
        TaskState.Rebuilding => "rebuilding",
        TaskState.RebuildSpawning => "rebuild_spawning",
        TaskState.PoweringOff => "powering-off",
        TaskState.PoweringOn => "powering-on",
        TaskState.Deleting => "deleting",
        TaskState.Rebooting => "rebooting",
        TaskState.RebootingHard => "rebooting_hard",
        TaskState.Pausing => "pausing",
        TaskState.Unpausing => "unpausing",
        TaskState.Suspending => "suspending",
        TaskState.Resuming => "resuming",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    public static string? ToNova(this TaskState? state) => state?.ToNova();

    /// <summary>The API's server status (nova/api/openstack/common.py _STATE_MAP).</summary>
    public static string ServerStatus(VmState vm, TaskState? task) => (vm, task) switch
    {
        (VmState.Active or VmState.Paused, TaskState.Migrating) => "MIGRATING",
        (VmState.Active or VmState.Stopped, TaskState.ResizePrep or TaskState.ResizeMigrating or TaskState.ResizeMigrated or TaskState.ResizeFinish) => "RESIZE",
        (VmState.Active or VmState.Stopped or VmState.Error, TaskState.Rebuilding or TaskState.RebuildSpawning) => "REBUILD",
        (VmState.Resized, TaskState.ResizeReverting) => "REVERT_RESIZE",
        (VmState.Active, TaskState.Rebooting) => "REBOOT",
        (VmState.Active or VmState.Stopped or VmState.Paused or VmState.Error, TaskState.RebootingHard) => "HARD_REBOOT",
        (VmState.Resized, _) => "VERIFY_RESIZE",
        (VmState.Building, _) => "BUILD",
        (VmState.Active, _) => "ACTIVE",
        (VmState.Stopped, _) => "SHUTOFF",
        (VmState.Paused, _) => "PAUSED",
        (VmState.Suspended, _) => "SUSPENDED",
        (VmState.Error, _) => "ERROR",
        (VmState.Deleted, _) => "DELETED",
        _ => "UNKNOWN",
    };
}
