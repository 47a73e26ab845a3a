using System.Text.Json;
using Ferry.Core.Observability;

namespace Ferry.Core.Rpc;

/// <summary>
/// Timeouts for calls: normal ones, and long ones for pre_live_migration, which may create disks.
/// Nova's long_rpc_timeout is 1800 s; Ferry uses 300 s so a dead destination cannot hold a move for half an hour.
/// </summary>
public sealed class RpcOptions
{
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan LongCallTimeout { get; set; } = TimeSpan.FromSeconds(300);
}

/// <summary>Base of the typed clients: serialize, send, deserialize.</summary>
public abstract class RpcClient(IRpcTransport transport, RpcOptions options)
{
    protected RpcOptions Options { get; } = options;

    protected Task CastAsync<TRequest>(string topic, string method, TRequest request, CancellationToken cancellationToken) =>
        RpcMetrics.CountCast(topic, method, transport.CastAsync(topic, method, JsonSerializer.SerializeToUtf8Bytes(request, RpcJson.TypeInfo<TRequest>()), cancellationToken));

    protected Task NotifyAsync<TRequest>(string topic, string method, TRequest request, TimeSpan expiresAfter, CancellationToken cancellationToken) =>
        RpcMetrics.CountCast(topic, method, transport.NotifyAsync(topic, method, JsonSerializer.SerializeToUtf8Bytes(request, RpcJson.TypeInfo<TRequest>()),
            expiresAfter, cancellationToken));

    protected async Task<TReply> CallAsync<TRequest, TReply>(string topic, string method, TRequest request, CancellationToken cancellationToken, bool longCall = false)
    {
        var payload = JsonSerializer.SerializeToUtf8Bytes(request, RpcJson.TypeInfo<TRequest>());
        var reply = await RpcMetrics.TimeCallAsync(topic, method, () => transport.CallAsync(topic, method, payload, longCall ? Options.LongCallTimeout : Options.CallTimeout, cancellationToken));
        return JsonSerializer.Deserialize(reply, RpcJson.TypeInfo<TReply>())!;
    }
}
