using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Ferry.Core.Observability;

namespace Ferry.Core.Rpc;

/// <summary>Maps method names to typed handlers; payloads are (de)serialized with <see cref="RpcJsonContext"/>.</summary>
public sealed class RpcServer : IRpcDispatcher
{
    private readonly Dictionary<string, Func<byte[], CancellationToken, Task<byte[]>>> _handlers = [];
    private readonly HashSet<string> _idempotent = [];

    /// <param name="idempotent">The handler may run twice for one message and leave the same state and reply as once (a read,
    /// or a write that only sets values): a broker's redelivery then simply runs it again, with no deduplication record
    /// (<see cref="IRpcDispatcher.IsIdempotent"/>). Leave it false for anything that checks and changes state (a CAS, a move
    /// step, an insert).</param>
    public RpcServer On<TRequest, TReply>(string method, Func<TRequest, CancellationToken, Task<TReply>> handler, bool idempotent = false)
    {
        if (idempotent)
        {
            _idempotent.Add(method);
        }
        else
        {
            _idempotent.Remove(method);
        }
        var requestType = RpcJson.TypeInfo<TRequest>();
        var replyType = RpcJson.TypeInfo<TReply>();
        _handlers[method] = async (payload, ct) =>
        {
            var request = JsonSerializer.Deserialize(payload, requestType)!;
            var reply = await handler(request, ct);
            return JsonSerializer.SerializeToUtf8Bytes(reply, replyType);
        };
        return this;
    }

    /// <summary>A handler with no reply (casts, or calls that only need to know it succeeded).</summary>
    public RpcServer On<TRequest>(string method, Func<TRequest, CancellationToken, Task> handler, bool idempotent = false) =>
        On<TRequest, RpcEmpty>(method, async (request, ct) =>
        {
            await handler(request, ct);
            return RpcEmpty.Instance;
        }, idempotent);

    public bool IsIdempotent(string method) => _idempotent.Contains(method);

    public Task<byte[]> DispatchAsync(string method, byte[] payload, CancellationToken cancellationToken) =>
        _handlers.TryGetValue(method, out var handler)
            ? RpcMetrics.TimeHandlerAsync(method, () => handler(payload, cancellationToken))
            : throw new InvalidOperationException($"No handler for RPC method {method}");
}

public sealed record RpcEmpty
{
    public static readonly RpcEmpty Instance = new();
}

public static class RpcJson
{
    public static JsonTypeInfo<T> TypeInfo<T>() =>
        (JsonTypeInfo<T>)(RpcJsonContext.Default.GetTypeInfo(typeof(T))
            ?? throw new InvalidOperationException($"{typeof(T).Name} is not registered in RpcJsonContext"));
}
