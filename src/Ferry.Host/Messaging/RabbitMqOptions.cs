namespace Ferry.Host.Messaging;

/// <summary>Settings of <see cref="RabbitMqTransport"/> (Nova's <c>transport_url</c> and <c>[oslo_messaging_rabbit]</c>).</summary>
public sealed class RabbitMqOptions
{
    /// <summary>The setting an operator changes when the broker cannot be reached (named in that error).</summary>
    public const string SettingName = "transport (FERRY_TRANSPORT or --transport)";

    /// <summary><c>rabbitmq://user:pass@host:port/vhost</c>; <c>amqp://</c> and oslo's <c>rabbit://</c> are accepted too.</summary>
    public string Url { get; set; } = "rabbitmq://guest:guest@127.0.0.1:5672/";

    /// <summary>The topic exchange every topic's queue is bound to (oslo's <c>control_exchange</c>); queues are named <c>exchange.topic</c>.</summary>
    public string Exchange { get; set; } = "ferry";

    /// <summary>
    /// Unacknowledged messages a listener holds at once (0: no limit, oslo.messaging's <c>rabbit_qos_prefetch_count</c>
    /// default). Each runs on its own task; a limit would bring back the deadlock of a serial queue once that many handlers
    /// wait on calls whose own nested calls sit in the queue behind them (240 moves at once: every conductor slot held by
    /// a <c>live_migrate_instance</c> waiting on computes that wait on <c>action_event</c> calls to the conductor).
    /// </summary>
    public ushort Prefetch { get; set; }

    /// <summary>How long a call or cast waits for the broker (down, or reconnecting) before it fails with a transient error.</summary>
    public TimeSpan UnavailableWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a cast waits for the broker's confirm while its connection stays up. A slow confirm is a loaded broker
    /// (its disk flush queued behind others), not an absent one: 200 live migrations requested at once on a saturated
    /// machine waited over 5 s for one, and the API answered 503 for a move the broker then took.
    /// </summary>
    public TimeSpan ConfirmWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the connection retries after the broker went away.</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a stopping listener lets running handlers finish (and ack) before it closes its channel.</summary>
    public TimeSpan ShutdownGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After this long without renewal a shared deduplicator lets a redelivery take over a claim whose run never finished
    /// (its replica died); a live claim is renewed several times per lease however long its run takes.
    /// </summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Channels the connection may open (0: the broker's limit, 2,047 by default); tests set a small one.</summary>
    internal ushort ChannelMax { get; set; }

    /// <summary>How often a redelivery polls the deduplicator while the first run of its message is still going.</summary>
    public TimeSpan BusyPollInterval { get; set; } = TimeSpan.FromMilliseconds(50);
}
