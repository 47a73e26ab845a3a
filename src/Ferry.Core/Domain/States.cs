using System.Text.Json.Serialization;

namespace Ferry.Core.Domain;

/// <summary>Nova's vm_state: what the instance is, between tasks (nova/compute/vm_states.py).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<VmState>))]
public enum VmState
{
    [JsonStringEnumMemberName("building")] Building,
    [JsonStringEnumMemberName("active")] Active,
    [JsonStringEnumMemberName("paused")] Paused,
    [JsonStringEnumMemberName("stopped")] Stopped,
    [JsonStringEnumMemberName("resized")] Resized,
    [JsonStringEnumMemberName("error")] Error,
    [JsonStringEnumMemberName("deleted")] Deleted,
    [JsonStringEnumMemberName("suspended")] Suspended,
}

/// <summary>Nova's task_state: what is being done to the instance right now (nova/compute/task_states.py).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TaskState>))]
public enum TaskState
{
    [JsonStringEnumMemberName("scheduling")] Scheduling,
    [JsonStringEnumMemberName("spawning")] Spawning,
    [JsonStringEnumMemberName("migrating")] Migrating,
    [JsonStringEnumMemberName("resize_prep")] ResizePrep,
    [JsonStringEnumMemberName("resize_migrating")] ResizeMigrating,
    [JsonStringEnumMemberName("resize_migrated")] ResizeMigrated,
    [JsonStringEnumMemberName("resize_finish")] ResizeFinish,
    [JsonStringEnumMemberName("resize_reverting")] ResizeReverting,
    [JsonStringEnumMemberName("rebuilding")] Rebuilding,
    [JsonStringEnumMemberName("rebuild_spawning")] RebuildSpawning,
    [JsonStringEnumMemberName("powering-off")] PoweringOff,
    [JsonStringEnumMemberName("powering-on")] PoweringOn,
    [JsonStringEnumMemberName("deleting")] Deleting,
    [JsonStringEnumMemberName("rebooting")] Rebooting,
    [JsonStringEnumMemberName("rebooting_hard")] RebootingHard,
    [JsonStringEnumMemberName("pausing")] Pausing,
    [JsonStringEnumMemberName("unpausing")] Unpausing,
    [JsonStringEnumMemberName("suspending")] Suspending,
    [JsonStringEnumMemberName("resuming")] Resuming,
}

/// <summary>Nova's power_state integers (nova/compute/power_state.py).</summary>
public enum PowerState
{
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    Suspended = 7,
}

/// <summary>Nova's migration_type values.</summary>
public static class MigrationType
{
    public const string Migration = "migration";
    public const string Resize = "resize";
    public const string LiveMigration = "live-migration";
    public const string Evacuation = "evacuation";
}

/// <summary>
/// Migration.status is a free-form string in Nova; these are the values its flows use
/// (reference nova.md §2.1 and the status timeline in Appendix B).
/// </summary>
public static class MigrationStatus
{
    public const string Accepted = "accepted";
    public const string PreMigrating = "pre-migrating";
    public const string Migrating = "migrating";
    public const string PostMigrating = "post-migrating";
    public const string Finished = "finished";
    public const string Confirming = "confirming";
    public const string Confirmed = "confirmed";
    public const string Reverting = "reverting";
    public const string Reverted = "reverted";
    public const string Queued = "queued";
    public const string Preparing = "preparing";
    public const string Running = "running";
    public const string RunningPostCopy = "running (post-copy)";
    public const string Completed = "completed";
    public const string Done = "done";
    public const string Cancelled = "cancelled";
    public const string Failed = "failed";
    public const string Error = "error";

    /// <summary>Statuses after which nothing more happens to the record.</summary>
    public static readonly IReadOnlySet<string> Final = new HashSet<string>
    {
        Confirmed, Reverted, Error, Failed, Completed, Cancelled, Done,
    };

    /// <summary>A live migration the API can show, abort or force-complete.</summary>
    public static readonly IReadOnlySet<string> LiveInProgress = new HashSet<string>
    {
        Queued, Preparing, Running, PostMigrating,
    };

    /// <summary>
    /// Not final for resource accounting: `finished` still holds resources on both hosts until
    /// confirm or revert, and `done` (evacuated) holds the source until the source host cleans up.
    /// </summary>
    public static bool HoldsResources(string status) =>
        !Final.Contains(status) || status == Done;
}
