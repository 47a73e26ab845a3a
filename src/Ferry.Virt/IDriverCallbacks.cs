namespace Ferry.Virt;

/// <summary>The only way a driver talks upward: progress of a running migration and help from its destination (Nova's virtapi).</summary>
public interface IDriverCallbacks
{
    /// <summary>Called by the migration monitor at every sample; must not block for long.</summary>
    ValueTask MigrationProgressAsync(string instanceUuid, MigrationProgress progress, CancellationToken cancellationToken);

    /// <summary>Called once when a migration switches to post-copy: from here on it cannot be aborted.</summary>
    ValueTask MigrationSwitchedToPostCopyAsync(string instanceUuid, CancellationToken cancellationToken);

    /// <summary>
    /// Called when the stream of a post-copy migration broke: asks the destination host to listen again
    /// (<see cref="IComputeDriver.RecoverPostCopyAtDestinationAsync"/>) and returns the address to resume to.
    /// Throws when the destination cannot.
    /// </summary>
    ValueTask<string> RecoverPostCopyAsync(string instanceUuid, CancellationToken cancellationToken);
}
