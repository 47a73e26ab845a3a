namespace Ferry.Core.Errors;

// One type per Nova fault that Ferry's flows raise. HTTP status is what Nova's API answers when the
// fault reaches it synchronously; faults that only happen after a cast end up in instance faults.

public sealed class InstanceNotFoundException(string uuid)
    : NotFoundException($"Instance {uuid} could not be found.");

public sealed class FlavorNotFoundException(string id)
    : NotFoundException($"Flavor {id} could not be found.");

public sealed class ImageNotFoundException(string id)
    : NotFoundException($"Image {id} could not be found.");

public sealed class MigrationNotFoundException(string message) : NotFoundException(message);

/// <summary>vm_state / task_state / power_state does not allow the action (409).</summary>
public sealed class InstanceInvalidStateException(string message) : ConflictException(message)
{
    public static InstanceInvalidStateException For(string action, string uuid, string attr, string? state) =>
        new($"Cannot '{action}' instance {uuid} while it is in {attr} {state ?? "None"}");
}

/// <summary>A compare-and-swap on task_state lost: someone else changed the instance first (409).</summary>
public sealed class UnexpectedTaskStateException(string message) : ConflictException(message);

public sealed class InstanceIsLockedException(string uuid)
    : ConflictException($"Instance {uuid} is locked");

public sealed class ComputeHostNotFoundException(string host)
    : BadRequestException($"Compute host {host} could not be found.");

public class NoValidHostException(string reason)
    : FerryException($"No valid host was found. {reason}", 400);

public sealed class MaxRetriesExceededException(string reason) : NoValidHostException(reason);

public sealed class ComputeServiceUnavailableException(string host)
    : FerryException($"Compute service of {host} is unavailable at this time.", 400);

public sealed class ComputeServiceInUseException(string host)
    : BadRequestException($"Compute service of {host} is still in use.");

public sealed class UnableToMigrateToSelfException(string uuid, string host)
    : FerryException($"Unable to migrate instance ({uuid}) to current host ({host}).", 400);

public sealed class InvalidHypervisorTypeException()
    : FerryException("The supplied hypervisor type of is invalid.", 400);

public sealed class DestinationHypervisorTooOldException()
    : FerryException("The instance requires a newer hypervisor version than has been provided.", 400);

public sealed class InvalidCpuInfoException(string reason)
    : FerryException($"Unacceptable CPU info: {reason}", 400);

public sealed class InvalidLocalStorageException(string path, string reason)
    : FerryException($"{path} is not on local storage: {reason}", 400);

public sealed class InvalidSharedStorageException(string path, string reason)
    : FerryException($"{path} is not on shared storage: {reason}", 400);

public sealed class MigrationPreCheckException(string reason)
    : FerryException($"Migration pre-check error: {reason}", 400);

public sealed class CannotResizeToSameFlavorException()
    : BadRequestException("When resizing, instances must change flavor!");

public sealed class CannotMigrateToSameHostException()
    : BadRequestException("Cannot migrate to the host where the server exists.");

public sealed class InvalidMigrationStateException(string message) : BadRequestException(message);

public sealed class ServiceUnavailableException(string message) : ConflictException(message);

/// <summary>A failure injected by a fake driver hook, for tests of every rollback path.</summary>
public sealed class InjectedFailureException(string step)
    : FerryException($"Injected failure at {step}", 500);

/// <summary>The hypervisor reported that a live migration failed (not an abort).</summary>
public sealed class LiveMigrationFailedException(string reason)
    : FerryException($"Live migration failed: {reason}", 500);

/// <summary>
/// A failure after which the instance is left as it was before the step (Nova's
/// InstanceFaultRollback): vm_state is restored instead of set to error.
/// </summary>
public sealed class InstanceFaultRollbackException(string message) : FerryException(message, 400);

public sealed class PlacementConflictException(string message) : ConflictException(message);
