using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Ferry.Core.Errors;
using Ferry.Core.Observability;
using Ferry.Core.Rpc;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace Ferry.Host.Messaging;

/// <summary>
/// <see cref="IRpcTransport"/> over RabbitMQ with oslo.messaging's shape: one durable topic exchange
/// (<see cref="RabbitMqOptions.Exchange"/>), one durable queue per topic shared by every replica that listens on it
/// (competing consumers). Casts are persistent and published with confirms (a cast accepted is a cast the broker
/// holds); calls are transient (re-sent by the caller after a broker restart) and answered on this instance's
/// exclusive reply queue, matched by message id (the reply is the call's confirm: waiting for the broker's as well
/// would only add its disk flush to every call). Every message carries an <see cref="RpcEnvelope"/> in its AMQP
/// properties: message id, reply-to, deadline (AMQP <c>expiration</c> plus a header checked on receipt),
/// <c>traceparent</c> and method. Listeners ack after the handler finishes, hold at most
/// <see cref="RabbitMqOptions.Prefetch"/> messages (no limit by default) and run each on its own task; a redelivery
/// runs once through <see cref="IRpcDeduplicator"/>, unless its method is idempotent
/// (<see cref="IRpcDispatcher.IsIdempotent"/>): that one runs again. The connection and its topology (queues, bindings,
/// consumers) recover by themselves after a broker restart; a call or cast made while the broker is away waits at most
/// <see cref="RabbitMqOptions.UnavailableWait"/>, then fails with <see cref="RpcUnavailableException"/>.
/// </summary>
public sealed partial class RabbitMqTransport : IRpcTransport, IAsyncDisposable
{
    private const string DeadlineHeader = "x-ferry-deadline";
    private const string TraceParentHeader = "traceparent";
    private const string ReplyType = "reply";
    private const string ErrorType = "error";

    private readonly RabbitMqOptions _options;
    private readonly RabbitMqEndpoint _endpoint;
    private readonly IRpcDeduplicator _deduplicator;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<RpcOutcome>> _pending = new();
    private readonly ConcurrentDictionary<string, byte> _declaredTopics = new();
    private readonly ConcurrentDictionary<Listener, byte> _listeners = new();
    // Listeners opening their channel and queue at once: a process of 1,000 fake hosts starting all of theirs together
    // kept a broker so busy that its answers came after the client's timeout, and every late one was tried again.
    private readonly SemaphoreSlim _listenerStarts = new(16, 16);
    private Link? _link;
    private IDisposable? _health;
    private volatile bool _recovering;
    private string? _lastRecoveryError; // of the reconnection going on: each reason is logged once, not at every try
    private TaskCompletionSource _recovered = new(TaskCreationOptions.RunContinuationsAsynchronously); // completed at each recovery, then replaced
    private volatile bool _disposed;

    /// <summary>Parses the URL (a bad one throws <see cref="FormatException"/> naming the setting); <see cref="StartAsync"/> connects.</summary>
    public RabbitMqTransport(RabbitMqOptions options, IRpcDeduplicator deduplicator, ILogger<RabbitMqTransport> logger, TimeProvider timeProvider)
    {
        _options = options;
        _endpoint = RabbitMqEndpoint.Parse(options.Url);
        _deduplicator = deduplicator;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>
    /// The deduplicator of the topics every replica of a role shares (conductor, scheduler), when it is not the process's
    /// own: one in the database lets a replica answer a redelivery another replica finished but never acked. Per-host
    /// topics (compute.&lt;host&gt;) have one consumer process and keep the process's own. Set before listening.
    /// </summary>
    public IRpcDeduplicator? ReplicaTopicsDeduplicator { get; set; }

    private IRpcDeduplicator DeduplicatorFor(string topic) =>
        topic is Topics.Conductor or Topics.Scheduler && ReplicaTopicsDeduplicator is { } shared ? shared : _deduplicator;

    /// <summary>The broker as an operator would name it: the URL without its password.</summary>
    public string BrokerDisplay => _endpoint.Display;

    private sealed record Link(IConnection Connection, IChannel Publish, IChannel Calls, IChannel Replies, string ReplyQueue);

    private Link Bus => _link ?? throw new InvalidOperationException("RabbitMqTransport.StartAsync has not run");

    /// <summary>Creates a transport and connects it (<see cref="StartAsync"/>).</summary>
    /// <exception cref="FormatException">The URL is not a rabbitmq:// URL.</exception>
    /// <exception cref="RpcUnavailableException">No broker at the URL.</exception>
    public static async Task<RabbitMqTransport> ConnectAsync(RabbitMqOptions options, IRpcDeduplicator deduplicator, ILogger<RabbitMqTransport> logger,
        TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var transport = new RabbitMqTransport(options, deduplicator, logger, timeProvider);
        await transport.StartAsync(cancellationToken);
        return transport;
    }

    /// <summary>
    /// Connects (once; later calls do nothing), declares the exchange and this instance's reply queue. A broker that cannot be reached gives one
    /// <see cref="RpcUnavailableException"/> line naming the URL (without its password) and the setting to change.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_link is not null)
        {
            return;
        }
        var factory = new ConnectionFactory
        {
            HostName = _endpoint.HostName,
            Port = _endpoint.Port,
            VirtualHost = _endpoint.VirtualHost,
            UserName = _endpoint.UserName,
            Password = _endpoint.Password,
            AutomaticRecoveryEnabled = true,
            TopologyRecoveryEnabled = true,
            NetworkRecoveryInterval = _options.RecoveryInterval,
            RequestedChannelMax = _options.ChannelMax == 0 ? ConnectionFactory.DefaultChannelMax : _options.ChannelMax,
            // A broker declaring 10,000 durable queues at once answers a declare or bind in more than the client's default
            // 20 s; a listener whose declare timed out starts over on a new channel, adding to the work that made it late.
            // A broker that is gone is found by the connection's heartbeat, not by this.
            ContinuationTimeout = TimeSpan.FromMinutes(2),
            // Every try of the connection's recovery connects with this timeout, not with UnavailableWait (how long a caller
            // waits): a broker that is down refuses at once anyway, while a process too loaded to run a connect's completion
            // within UnavailableWait (2 s in the tests) timed out against a broker that was back, try after try.
            RequestedConnectionTimeout = ConnectionFactory.DefaultConnectionTimeout,
            ClientProvidedName = $"ferry {Environment.MachineName} {Environment.ProcessId}",
        };
        IConnection connection;
        try
        {
            connection = await factory.CreateConnectionAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is BrokerUnreachableException or IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new RpcUnavailableException(
                $"Cannot reach the message broker at {_endpoint.Display}: {Innermost(ex).Message}; set {RabbitMqOptions.SettingName} to a running RabbitMQ");
        }
        try
        {
            var publish = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
            await publish.ExchangeDeclareAsync(_options.Exchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
            var calls = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            var replies = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            // Named by the client, not the server, so topology recovery re-creates it under the same name after a
            // broker restart and replies to calls made before it still find it.
            var replyQueue = $"{_options.Exchange}.reply.{Guid.NewGuid():N}";
            await replies.QueueDeclareAsync(replyQueue, durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken);
            var consumer = new AsyncEventingBasicConsumer(replies);
            consumer.ReceivedAsync += OnReplyAsync;
            await replies.BasicConsumeAsync(replyQueue, autoAck: true, consumer, cancellationToken);
            connection.ConnectionShutdownAsync += OnConnectionShutdownAsync;
            connection.ConnectionRecoveryErrorAsync += OnConnectionRecoveryErrorAsync;
            connection.RecoverySucceededAsync += OnRecoverySucceededAsync;
            _link = new Link(connection, publish, calls, replies, replyQueue);
            // ferry.bus.up{transport="rabbitmq"} reads the connection at every scrape: 0 from its loss until its recovery.
            _health = BusMetrics.Register("rabbitmq", () => !_disposed && !_recovering && connection.IsOpen);
            Log.Connected(_logger, _endpoint.Display, _options.Exchange);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public Task CastAsync(string topic, string method, byte[] payload, CancellationToken cancellationToken) =>
        PublishRequestAsync(Bus.Publish, topic, RpcEnvelope.Create(method, replyTo: null, deadline: null), payload, cancellationToken);

    /// <summary>
    /// A transient cast with a deadline (the AMQP expiration too): the broker neither writes it to disk nor keeps it past
    /// then. Sent on the channel without publisher confirms: the next one replaces a notification the broker drops, so
    /// waiting for its confirm would only cost a round trip and a wake-up per heartbeat.
    /// </summary>
    public Task NotifyAsync(string topic, string method, byte[] payload, TimeSpan expiresAfter, CancellationToken cancellationToken) =>
        PublishRequestAsync(Bus.Calls, topic, RpcEnvelope.Create(method, replyTo: null, deadline: _timeProvider.GetUtcNow() + expiresAfter), payload, cancellationToken);

    public async Task<byte[]> CallAsync(string topic, string method, byte[] payload, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = _timeProvider.GetUtcNow() + timeout;
        var envelope = RpcEnvelope.Create(method, Bus.ReplyQueue, deadline);
        var reply = new TaskCompletionSource<RpcOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[envelope.MessageId] = reply;
        try
        {
            var recovered = Volatile.Read(ref _recovered).Task;
            await PublishRequestAsync(Bus.Calls, topic, envelope, payload, cancellationToken);
            try
            {
                while (true)
                {
                    var left = deadline - _timeProvider.GetUtcNow();
                    var first = await Task.WhenAny(reply.Task, recovered).WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _timeProvider, cancellationToken);
                    if (first == reply.Task)
                    {
                        break;
                    }
                    // The connection came back: a reply sent while it was down went with the broker (reply queues do not
                    // outlive it), so ask again under the same message id; the receiver's deduplicator answers a request it
                    // already ran with the recorded outcome instead of running it twice.
                    recovered = Volatile.Read(ref _recovered).Task;
                    Log.CallResent(_logger, method, topic, envelope.MessageId);
                    await PublishRequestAsync(Bus.Calls, topic, envelope, payload, cancellationToken);
                }
            }
            catch (TimeoutException)
            {
                throw new RpcTimeoutException($"Timed out waiting for a reply to {method} on {topic} after {timeout.TotalSeconds:0.###} s");
            }
            var outcome = await reply.Task;
            return outcome.IsError ? throw RpcError.Deserialize(outcome.Body).ToException() : outcome.Body;
        }
        finally
        {
            _pending.TryRemove(envelope.MessageId, out _);
        }
    }

    public IAsyncDisposable Listen(string topic, IRpcDispatcher dispatcher)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var listener = new Listener(this, topic, dispatcher);
        _listeners.TryAdd(listener, 0);
        listener.Start();
        return listener;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _health?.Dispose();
        await Task.WhenAll(_listeners.Keys.Select(l => l.DisposeAsync().AsTask()));
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(new RpcUnavailableException("The RPC transport is stopping"));
        }
        if (_link is not { } link)
        {
            return;
        }
        try
        {
            await link.Connection.CloseAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Already gone with the broker; nothing left to close.
        }
        await link.Connection.DisposeAsync();
    }

    private string QueueOf(string topic) => $"{_options.Exchange}.{topic}";

    /// <summary>
    /// Publishes a request with confirms, declaring its topic's queue first so a message to a topic nobody listens
    /// on yet waits for a listener. While the broker is away it retries for <see cref="RabbitMqOptions.UnavailableWait"/>;
    /// while it is connected but slow, a publish waits up to <see cref="RabbitMqOptions.ConfirmWait"/> for its confirm.
    /// A retried publish keeps its message id, so a copy the broker did take runs once (the deduplicator).
    /// </summary>
    private async Task PublishRequestAsync(IChannel channel, string topic, RpcEnvelope envelope, byte[] payload, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var giveUp = _timeProvider.GetUtcNow() + _options.UnavailableWait;
        var properties = RequestProperties(envelope);
        string? lastError = null;
        while (true)
        {
            if (_timeProvider.GetUtcNow() < giveUp && IsAvailable(channel))
            {
                var attemptStart = _timeProvider.GetUtcNow();
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(_options.ConfirmWait);
                try
                {
                    if (!_declaredTopics.ContainsKey(topic))
                    {
                        await DeclareTopicAsync(channel, topic, attempt.Token);
                        _declaredTopics.TryAdd(topic, 0);
                    }
                    await channel.BasicPublishAsync(_options.Exchange, topic, mandatory: false, properties, payload, attempt.Token);
                    return;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    if (IsAvailable(channel))
                    {
                        throw new RpcUnavailableException(
                            $"The message broker at {_endpoint.Display} is overloaded: {envelope.Method} to {topic} had no confirm " +
                            $"within {_options.ConfirmWait.TotalSeconds:0.###} s");
                    }
                    lastError = "the connection was lost before the broker confirmed";
                }
                catch (Exception ex) when (ex is not OperationCanceledException && !_disposed)
                {
                    lastError = ex.Message;
                    Log.PublishFailed(_logger, envelope.Method, topic, ex.Message);
                }
                // Time spent connected, waiting on the broker, is not time it was away.
                giveUp += _timeProvider.GetUtcNow() - attemptStart;
            }
            if (_timeProvider.GetUtcNow() >= giveUp)
            {
                throw new RpcUnavailableException(
                    $"The message broker at {_endpoint.Display} is unavailable: {envelope.Method} to {topic} was not sent within " +
                    $"{_options.UnavailableWait.TotalSeconds:0.###} s ({lastError ?? "reconnecting"})");
            }
            await Task.Delay(_options.BusyPollInterval, _timeProvider, cancellationToken);
        }
    }

    private bool IsAvailable(IChannel channel) => !_recovering && Bus.Connection.IsOpen && channel.IsOpen;

    private async Task DeclareTopicAsync(IChannel channel, string topic, CancellationToken cancellationToken)
    {
        await channel.QueueDeclareAsync(QueueOf(topic), durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(QueueOf(topic), _options.Exchange, topic, cancellationToken: cancellationToken);
    }

    private BasicProperties RequestProperties(RpcEnvelope envelope)
    {
        var headers = new Dictionary<string, object?> { [TraceParentHeader] = envelope.TraceParent };
        string? expiration = null;
        if (envelope.Deadline is { } deadline)
        {
            headers[DeadlineHeader] = deadline.ToUnixTimeMilliseconds();
            var ttl = (long)Math.Ceiling((deadline - _timeProvider.GetUtcNow()).TotalMilliseconds);
            expiration = Math.Max(1, ttl).ToString(CultureInfo.InvariantCulture);
        }
        return new BasicProperties
        {
            MessageId = envelope.MessageId,
            CorrelationId = envelope.MessageId,
            ReplyTo = envelope.ReplyTo,
            Type = envelope.Method,
            ContentType = "application/json",
            // A cast is persistent: once confirmed it must outlive a broker restart. A call is not written to the broker's
            // disk (most of a 10,000-host control plane's traffic is calls and heartbeats): its caller waits for the reply and
            // sends it again under the same message id when its connection recovers (CallAsync). Nor is a cast with a
            // deadline (NotifyAsync: a heartbeat), which the next one replaces.
            DeliveryMode = envelope.ReplyTo is null && envelope.Deadline is null ? DeliveryModes.Persistent : DeliveryModes.Transient,
            Expiration = expiration,
            Timestamp = new AmqpTimestamp(_timeProvider.GetUtcNow().ToUnixTimeSeconds()),
            Headers = headers,
        };
    }

    private static RpcEnvelope EnvelopeOf(IReadOnlyBasicProperties properties)
    {
        var headers = properties.Headers;
        string? traceParent = null;
        DateTimeOffset? deadline = null;
        if (headers is not null)
        {
            if (headers.TryGetValue(TraceParentHeader, out var tp))
            {
                traceParent = tp switch { byte[] bytes => Encoding.UTF8.GetString(bytes), string s => s, _ => null };
            }
            if (headers.TryGetValue(DeadlineHeader, out var dl) && dl is long or int)
            {
                deadline = DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(dl, CultureInfo.InvariantCulture));
            }
        }
        return new RpcEnvelope(properties.MessageId ?? properties.CorrelationId ?? Guid.NewGuid().ToString("N"), properties.Type ?? "",
            properties.ReplyTo, deadline, traceParent ?? RpcEnvelope.CurrentTraceParent());
    }

    private Task OnReplyAsync(object sender, BasicDeliverEventArgs delivery)
    {
        if (delivery.BasicProperties.CorrelationId is { } id && _pending.TryRemove(id, out var reply))
        {
            reply.TrySetResult(new RpcOutcome(delivery.BasicProperties.Type == ErrorType, delivery.Body.ToArray()));
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Sends a call's outcome to its caller's reply queue. While the broker is away it retries until the caller's
    /// deadline: the caller's reply queue comes back under the same name when its own connection recovers.
    /// </summary>
    private async Task PublishReplyAsync(RpcEnvelope envelope, RpcOutcome outcome)
    {
        var properties = new BasicProperties
        {
            CorrelationId = envelope.MessageId,
            Type = outcome.IsError ? ErrorType : ReplyType,
            ContentType = "application/json",
        };
        var giveUp = envelope.Deadline ?? _timeProvider.GetUtcNow() + _options.UnavailableWait;
        while (!_disposed)
        {
            if (IsAvailable(Bus.Calls))
            {
                try
                {
                    await Bus.Calls.BasicPublishAsync("", envelope.ReplyTo!, mandatory: false, properties, outcome.Body);
                    return;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.PublishFailed(_logger, envelope.Method, envelope.ReplyTo!, ex.Message);
                }
            }
            if (_timeProvider.GetUtcNow() >= giveUp)
            {
                Log.ReplyLost(_logger, envelope.Method, envelope.MessageId);
                return;
            }
            await Task.Delay(_options.BusyPollInterval, _timeProvider);
        }
    }

    private Task OnConnectionShutdownAsync(object sender, ShutdownEventArgs args)
    {
        if (args.Initiator != ShutdownInitiator.Application)
        {
            _recovering = true;
            Log.ConnectionLost(_logger, _endpoint.Display, args.ReplyText);
        }
        return Task.CompletedTask;
    }

    private Task OnConnectionRecoveryErrorAsync(object sender, ConnectionRecoveryErrorEventArgs args)
    {
        var reason = Innermost(args.Exception).Message;
        if (Interlocked.Exchange(ref _lastRecoveryError, reason) != reason)
        {
            Log.ReconnectFailed(_logger, _endpoint.Display, reason);
        }
        return Task.CompletedTask;
    }

    private Task OnRecoverySucceededAsync(object sender, AsyncEventArgs args)
    {
        _recovering = false;
        _lastRecoveryError = null;
        _declaredTopics.Clear();
        Log.ConnectionRecovered(_logger, _endpoint.Display);
        Interlocked.Exchange(ref _recovered, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        return Task.CompletedTask;
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null)
        {
            ex = ex.InnerException;
        }
        return ex;
    }

    /// <summary>One topic's consumer: its own channel, prefetch-bounded, each delivery run on its own task.</summary>
    internal sealed class Listener(RabbitMqTransport transport, string topic, IRpcDispatcher dispatcher) : IAsyncDisposable
    {
        private readonly IRpcDeduplicator _deduplicator = transport.DeduplicatorFor(topic);
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<Task, byte> _running = new();
        private readonly SemaphoreSlim _ackLock = new(1, 1);
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private IChannel? _channel;
        private string? _consumerTag;
        private Task _start = Task.CompletedTask;

        /// <summary>Completes once the consumer is registered with the broker (tests wait on it).</summary>
        public Task Ready => _ready.Task;

        public void Start() => _start = Task.Run(StartAsync);

        // A listener started while the broker is away keeps trying; once registered, the connection's recovery keeps it.
        private async Task StartAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await transport._listenerStarts.WaitAsync(_stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                try
                {
                    if (await TryStartAsync())
                    {
                        return;
                    }
                }
                finally
                {
                    transport._listenerStarts.Release();
                }
                try
                {
                    await Task.Delay(transport._options.RecoveryInterval, transport._timeProvider, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        /// <summary>Opens a channel, declares the topic and consumes it; false (the try's channel closed) when the broker failed it.</summary>
        private async Task<bool> TryStartAsync()
        {
            IChannel? channel = null;
            try
            {
                channel = await transport.Bus.Connection.CreateChannelAsync(cancellationToken: _stop.Token);
                if (transport._options.Prefetch > 0)
                {
                    await channel.BasicQosAsync(0, transport._options.Prefetch, global: false, _stop.Token); // no limit is a channel's default
                }
                await transport.DeclareTopicAsync(channel, topic, _stop.Token);
                var consumer = new AsyncEventingBasicConsumer(channel);
                consumer.ReceivedAsync += OnReceivedAsync;
                _channel = channel;
                _consumerTag = await channel.BasicConsumeAsync(transport.QueueOf(topic), autoAck: false, consumer, _stop.Token);
                Log.Listening(transport._logger, topic, transport.QueueOf(topic));
                _ready.TrySetResult();
                return true;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                if (_channel != channel)
                {
                    await CloseQuietlyAsync(channel);
                }
                return true; // stopping: nothing more to try
            }
            catch (Exception ex)
            {
                Log.ListenFailed(transport._logger, topic, ex.Message);
                // Closed before the next try: a broker too busy to answer in time made 1,000 listeners of one process
                // retry until their abandoned channels filled the connection's 2,047 and none could listen again.
                await CloseQuietlyAsync(channel);
                return false;
            }
        }

        private static async Task CloseQuietlyAsync(IChannel? channel)
        {
            if (channel is null)
            {
                return;
            }
            try
            {
                await channel.DisposeAsync();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Gone with the connection already.
            }
        }

        private Task OnReceivedAsync(object sender, BasicDeliverEventArgs delivery)
        {
            if (_stop.IsCancellationRequested)
            {
                // Not acked: the broker gives it to another replica when this channel closes.
                return Task.CompletedTask;
            }
            var envelope = EnvelopeOf(delivery.BasicProperties);
            var body = delivery.Body.ToArray();
            var tag = delivery.DeliveryTag;
            var channel = _channel!;
            var task = Task.Run(() => HandleAsync(envelope, body, tag, channel, delivery.Redelivered));
            _running.TryAdd(task, 0);
            _ = task.ContinueWith(t => _running.TryRemove(t, out _), TaskScheduler.Default);
            return Task.CompletedTask;
        }

        private async Task HandleAsync(RpcEnvelope envelope, byte[] body, ulong tag, IChannel channel, bool redelivered)
        {
            var log = transport._logger;
            if (envelope.IsExpired(transport._timeProvider.GetUtcNow()))
            {
                Log.ExpiredDropped(log, topic, envelope.Method, envelope.MessageId);
                await AckAsync(channel, tag);
                return;
            }
            // A method safe to run twice (reads, heartbeats) is not deduplicated: a redelivery runs it again. On the shared
            // topics that saves a claim and an outcome row in the database for every such message (two statements per heartbeat).
            var deduplicated = !dispatcher.IsIdempotent(envelope.Method);
            var claim = RpcClaim.Claimed;
            try
            {
                while (deduplicated
                    && (claim = await _deduplicator.ClaimAsync(envelope.MessageId, transport._options.ClaimLease, _stop.Token)).State == RpcClaimState.Busy)
                {
                    await Task.Delay(transport._options.BusyPollInterval, transport._timeProvider, _stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (claim.State == RpcClaimState.Done)
            {
                Log.DuplicateSkipped(log, topic, envelope.Method, envelope.MessageId, redelivered);
                if (envelope.ReplyTo is not null)
                {
                    await transport.PublishReplyAsync(envelope, claim.Outcome!);
                }
                await AckAsync(channel, tag);
                return;
            }
            RpcOutcome outcome;
            using (var activity = RpcTracing.StartHandlerActivity(envelope, topic))
            using (RpcTracing.BeginScope(log, envelope, activity))
            {
                try
                {
                    outcome = new RpcOutcome(false, await dispatcher.DispatchAsync(envelope.Method, body, _stop.Token));
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested && !deduplicated)
                {
                    // Not acked: the broker hands it to another replica, or to this topic's next listener, which runs it again.
                    return;
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    // The service stopped the run (an agent stopping, as with the in-process bus): the message is
                    // spent, not run again by the next delivery. What the run left half done is the next start's
                    // to finish or roll back (start-up recovery), as after a crash; running it again from the top
                    // would race that recovery (a live migration restarted while it is being rolled back).
                    outcome = new RpcOutcome(true, RpcError.From(new RpcUnavailableException($"{envelope.Method} on {topic} stopped with its service")).Serialize());
                    await _deduplicator.CompleteAsync(envelope.MessageId, outcome, CancellationToken.None);
                    await AckAsync(channel, tag);
                    return;
                }
                catch (Exception ex)
                {
                    if (envelope.ReplyTo is null)
                    {
                        Log.CastFailed(log, ex, topic, envelope.Method);
                    }
                    outcome = new RpcOutcome(true, RpcError.From(ex).Serialize());
                }
            }
            if (deduplicated)
            {
                await _deduplicator.CompleteAsync(envelope.MessageId, outcome, CancellationToken.None);
            }
            if (envelope.ReplyTo is not null)
            {
                await transport.PublishReplyAsync(envelope, outcome);
            }
            await AckAsync(channel, tag);
        }

        private async Task AckAsync(IChannel channel, ulong tag)
        {
            await _ackLock.WaitAsync();
            try
            {
                await channel.BasicAckAsync(tag, multiple: false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The channel went down with the broker or the listener: the broker redelivers, the deduplicator answers.
                Log.AckFailed(transport._logger, topic, ex.Message);
            }
            finally
            {
                _ackLock.Release();
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }
            transport._listeners.TryRemove(this, out _);
            if (_channel is { } channel && _consumerTag is { } consumerTag)
            {
                try
                {
                    await channel.BasicCancelAsync(consumerTag, noWait: false).WaitAsync(transport._options.ShutdownGrace);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The channel is already gone; its unacked messages are back in the queue.
                }
            }
            await _stop.CancelAsync();
            await _start;
            // Handlers that finish within the grace ack; the others' messages go back to the queue with the channel.
            await Task.WhenAll(_running.Keys).WaitAsync(transport._options.ShutdownGrace).ContinueWith(_ => { }, TaskScheduler.Default);
            if (_channel is { } open)
            {
                try
                {
                    await open.CloseAsync().WaitAsync(transport._options.ShutdownGrace);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Already closed with the connection.
                }
            }
        }
    }
}
