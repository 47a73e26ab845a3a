using System.Text.Json;
using Ferry.Core.Errors;

namespace Ferry.Core.Rpc;

/// <summary>
/// How a failed call's exception travels back to the caller, with its <see cref="FerryException.Details"/> (QEMU's last
/// lines from the callee's host, say: the caller's fault must quote them, and only the callee could read them).
/// </summary>
public sealed record RpcError(string Kind, string Message, int HttpStatus, string? Details = null)
{
    public static RpcError From(Exception ex) => ex switch
    {
        FerryException f => new RpcError(f.Kind, f.Message, f.HttpStatus, DetailsOf(f)),
        OperationCanceledException => new RpcError("Cancelled", ex.Message, 500),
        _ => new RpcError(ex.GetType().Name, ex.Message, 500),
    };

    public FerryException ToException() => ErrorRegistry.Rebuild(Kind, Message, HttpStatus).WithDetails(Details);

    private static string? DetailsOf(Exception ex)
    {
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            if ((e as FerryException)?.Details is { } details)
            {
                return details;
            }
        }
        return null;
    }

    public byte[] Serialize() => JsonSerializer.SerializeToUtf8Bytes(this, RpcJsonContext.Default.RpcError);

    public static RpcError Deserialize(byte[] bytes) =>
        JsonSerializer.Deserialize(bytes, RpcJsonContext.Default.RpcError)!;
}

/// <summary>Thrown by a dispatcher to carry an already-serialized error (used by transports).</summary>
public sealed class RpcFailure(RpcError error) : Exception(error.Message)
{
    public RpcError Error { get; } = error;
}
