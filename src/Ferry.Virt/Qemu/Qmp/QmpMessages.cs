using System.Text.Json;
using Ferry.Core.Errors;

namespace Ferry.Virt.Qemu.Qmp;

/// <summary>An asynchronous QMP event (<c>{"event": …, "data": …, "timestamp": …}</c>).</summary>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp);

/// <summary>
/// A QMP command failed: either QEMU answered with <c>{"error": {"class", "desc"}}</c>, or the connection
/// ended before the reply came (<see cref="ConnectionClosedClass"/>).
/// </summary>
public sealed class QmpException(string errorClass, string description)
    : FerryException($"QMP error {errorClass}: {description}")
{
    /// <summary>The error class used when the monitor connection closed (QEMU exited or was killed).</summary>
    public const string ConnectionClosedClass = "ConnectionClosed";

    /// <summary>The error class used when QEMU did not answer a command in time (its monitor may answer later).</summary>
    public const string TimeoutClass = "Timeout";

    public string ErrorClass { get; } = errorClass;

    public string Description { get; } = description;
}

/// <summary>QEMU did not start, or its monitor socket never became reachable.</summary>
public sealed class QemuStartException(string message) : FerryException(message);
