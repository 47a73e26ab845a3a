using System.Collections.Concurrent;
using System.Threading.Channels;
using Ferry.Core.Errors;
using Microsoft.Extensions.Logging;

namespace Ferry.Core.Rpc;

/// <summary>
/// The embedded transport: one unbounded queue per topic, every message still serialized (so a
/// broker can replace this without touching a flow), and each delivered message run on its own task.
/// Messages carry the same <see cref="RpcEnvelope"/> as on a broker: an expired call is not run, and the
/// handler runs in the sender's trace.
/// </summary>
public sealed partial class InProcessTransport(ILogger<InProcessTransport> logger, TimeProvider timeProvider) : IRpcTransport
{
    private readonly ConcurrentDictionary<string, Channel<Envelope>> _queues = new();
    private readonly ILogger _logger = logger;
    private readonly TimeProvider _timeProvider = timeProvider;

    public InProcessTransport(ILogger<InProcessTransport> logger) : this(logger, TimeProvider.System)
    {
    }

    public Task CastAsync(string topic, string method, byte[] payload, CancellationToken cancellationToken)
    {
        Queue(topic).Writer.TryWrite(new Envelope(RpcEnvelope.Create(method, replyTo: null, deadline: null), payload, Reply: null));
        return Task.CompletedTask;
    }

    public async Task<byte[]> CallAsync(string topic, string method, byte[] payload, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var reply = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var meta = RpcEnvelope.Create(method, replyTo: "in-process", _timeProvider.GetUtcNow() + timeout);
        Queue(topic).Writer.TryWrite(new Envelope(meta, payload, reply));
        try
        {
            return await reply.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new RpcTimeoutException($"Timed out waiting for a reply to {method} on {topic} after {timeout.TotalSeconds:0.###} s");
        }
        catch (RpcFailure failure)
        {
            throw failure.Error.ToException();
        }
    }

    public IAsyncDisposable Listen(string topic, IRpcDispatcher dispatcher)
    {
        var listener = new Listener(this, topic, dispatcher);
        listener.Start();
        return listener;
    }

    private Channel<Envelope> Queue(string topic) =>
        _queues.GetOrAdd(topic, _ => Channel.CreateUnbounded<Envelope>(new UnboundedChannelOptions { SingleReader = false }));

    private sealed record Envelope(RpcEnvelope Meta, byte[] Payload, TaskCompletionSource<byte[]>? Reply);

    private sealed class Listener(InProcessTransport transport, string topic, IRpcDispatcher dispatcher) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<Task, byte> _running = new();
        private Task _pump = Task.CompletedTask;

        public void Start() => _pump = Task.Run(PumpAsync);

        private async Task PumpAsync()
        {
            var reader = transport.Queue(topic).Reader;
            try
            {
                while (await reader.WaitToReadAsync(_stop.Token))
                {
                    // Peek-then-read so a message is never taken by a listener that is stopping.
                    if (_stop.IsCancellationRequested || !reader.TryRead(out var envelope))
                    {
                        continue;
                    }
                    var task = Task.Run(() => HandleAsync(envelope));
                    _running.TryAdd(task, 0);
                    _ = task.ContinueWith(t => _running.TryRemove(t, out _), TaskScheduler.Default);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task HandleAsync(Envelope envelope)
        {
            if (envelope.Meta.IsExpired(transport._timeProvider.GetUtcNow()))
            {
                Log.ExpiredDropped(transport._logger, topic, envelope.Meta.Method, envelope.Meta.MessageId);
                return;
            }
            using var activity = RpcTracing.StartHandlerActivity(envelope.Meta, topic);
            using var scope = RpcTracing.BeginScope(transport._logger, envelope.Meta, activity);
            try
            {
                var result = await dispatcher.DispatchAsync(envelope.Meta.Method, envelope.Payload, _stop.Token);
                envelope.Reply?.TrySetResult(result);
            }
            catch (Exception ex)
            {
                if (envelope.Reply is null)
                {
                    if (ex is not OperationCanceledException)
                    {
                        Log.CastFailed(transport._logger, ex, topic, envelope.Meta.Method);
                    }
                }
                else
                {
                    envelope.Reply.TrySetException(new RpcFailure(RpcError.From(ex)));
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _pump;
            // Let handlers already running observe the stop; a stopped service finishes nothing new.
            await Task.WhenAll(_running.Keys).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
            _stop.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Error, Message = "Cast {Method} on {Topic} failed")]
        public static partial void CastFailed(ILogger logger, Exception ex, string topic, string method);

        [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Dropped {Method} on {Topic} (message {MessageId}): its caller's deadline has passed")]
        public static partial void ExpiredDropped(ILogger logger, string topic, string method, string messageId);
    }
}
