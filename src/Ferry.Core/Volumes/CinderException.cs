using Ferry.Core.Errors;

namespace Ferry.Core.Volumes;

/// <summary>
/// A Cinder fault: its HTTP status and the fault name Cinder's error body carries
/// (<c>{"badRequest": {"code": 400, "message": "…"}}</c>, cinder/api/openstack/wsgi.py); cinderclient reads the message
/// from the body's first key, so every refusal of the volume API is one of these.
/// </summary>
public sealed class CinderException(int status, string message) : FerryException(message, status)
{
    /// <summary>badRequest, itemNotFound, conflictingRequest, forbidden… (the same names as Nova's).</summary>
    public string Fault => FaultName;

    public static CinderException BadRequest(string message) => new(400, message);

    /// <summary>Cinder's InvalidInput: <c>Invalid input received: …</c>.</summary>
    public static CinderException InvalidInput(string reason) => new(400, $"Invalid input received: {reason}");

    /// <summary>Cinder's InvalidVolume: <c>Invalid volume: …</c>.</summary>
    public static CinderException InvalidVolume(string reason) => new(400, $"Invalid volume: {reason}");

    public static CinderException VolumeNotFound(string id) => new(404, $"Volume {id} could not be found.");

    public static CinderException AttachmentNotFound(string id) => new(404, $"Volume attachment could not be found with filter: attachment_id = {id}.");

    public static CinderException NotFound() => new(404, "The resource could not be found.");

    public static CinderException Conflict(string message) => new(409, message);

    /// <summary>oslo.policy's refusal as Cinder words it.</summary>
    public static CinderException PolicyRefused(string rule) => new(403, $"Policy doesn't allow {rule} to be performed.");

    /// <summary>Cinder's refusal to delete a volume that is not idle (volume/api.py, delete).</summary>
    public static CinderException NotDeletable() => InvalidVolume(
        "Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, " +
        "attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.");
}
