namespace Ferry.Core.Errors;

/// <summary>
/// Base of every expected failure. Each subclass is one Nova fault and carries the HTTP status the
/// API maps it to; <see cref="Kind"/> lets the exception cross an RPC boundary and be rebuilt as the
/// same type on the other side (nova/exception.py; oslo.messaging expected exceptions).
/// </summary>
public class FerryException(string message, int httpStatus = 500) : Exception(message)
{
    public int HttpStatus { get; } = httpStatus;

    /// <summary>
    /// What an operator can act on beyond the message (a log's last lines, the file to read): shown in the
    /// fault's <c>details</c> (<see cref="FaultDetails"/>). Never a stack trace: that goes to the log.
    /// </summary>
    public string? Details { get => _details; init => _details = value; }

    private string? _details;

    /// <summary>Gives an exception rebuilt from the wire the details it had on the far side of the call.</summary>
    internal FerryException WithDetails(string? details)
    {
        _details ??= details;
        return this;
    }

    /// <summary>
    /// True when the same request may succeed if retried later unchanged (the bus or database was away), as
    /// Npgsql's <c>NpgsqlException.IsTransient</c>; false for every fault the request itself caused.
    /// </summary>
    public virtual bool IsTransient => false;

    /// <summary>The stable name used on the wire; the class name by default.</summary>
    public virtual string Kind => GetType().Name;

    /// <summary>
    /// Nova's fault name in error bodies (<c>wsgi.Fault._fault_names</c>): badRequest, itemNotFound,
    /// conflictingRequest, forbidden…; every other status, 406 included, is a computeFault.
    /// </summary>
    public string FaultName => FaultNameOf(HttpStatus);

    public static string FaultNameOf(int httpStatus) => httpStatus switch
    {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
}

public class BadRequestException(string message) : FerryException(message, 400);

public class ForbiddenException(string message = "Policy doesn't allow this operation to be performed.")
    : FerryException(message, 403);

public class NotFoundException(string message) : FerryException(message, 404);

public class ConflictException(string message) : FerryException(message, 409);

/// <summary>A mapping added to an instance whose volume is mapped already, or whose device another volume took first.</summary>
public sealed class BlockDeviceTakenException(string message, bool deviceTaken) : BadRequestException(message)
{
    /// <summary>The device was taken (a retry with the next free one may succeed), not the volume mapped twice.</summary>
    public bool DeviceTaken { get; } = deviceTaken;
}

/// <summary>Raised when the request names a microversion the API does not serve.</summary>
public sealed class VersionNotAcceptableException(string message) : FerryException(message, 406);

/// <summary>A call got no reply in time; the callee may or may not have acted.</summary>
public sealed class RpcTimeoutException(string message) : FerryException(message, 504);

/// <summary>
/// The message bus could not take a call or cast (broker down, or reconnecting past the bounded wait): nothing was
/// sent, so retrying later is safe. A 503 in Nova's shape (serviceUnavailable).
/// </summary>
public sealed class RpcUnavailableException(string message) : FerryException(message, 503)
{
    public override bool IsTransient => true;
}

/// <summary>An unexpected exception on the far side of a call, carried back as text.</summary>
public sealed class RemoteErrorException(string kind, string message) : FerryException($"{kind}: {message}")
{
    public override string Kind => "RemoteError";
    public string RemoteKind { get; } = kind;
}
