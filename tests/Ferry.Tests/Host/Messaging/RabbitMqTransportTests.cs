using System.Diagnostics;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Errors;
using Ferry.Core.Observability;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Conductor;
using Ferry.Host.Distributed;
using Ferry.Host.Messaging;
using Ferry.Tests.Core.Observability;
using Ferry.Tests.Core.Rpc;
using Ferry.Tests.Persistence;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Host.Messaging;

/// <summary>The transport contract over a real RabbitMQ node, plus what only a broker can do: restart, redeliver, expire.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class RabbitMqTransportTests(RabbitMqServer broker) : RpcTransportContractTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(30);

    // What a broker restart may take on a loaded 2-core machine (RabbitMqServer.StartTimeout is as long).
    private static readonly TimeSpan s_restart = TimeSpan.FromMinutes(5);

    // A fresh exchange per test keeps its queues apart from every other test's on the shared node.
    private readonly string _exchange = $"ferry-test-{Guid.NewGuid():N}";

    // The contract's tests never stop the broker: their publishes may wait for it as long as a call waits for a reply, as
    // a loaded 2-core machine can take seconds to declare a queue and confirm a publish (with 2 s such a call failed as unavailable).
    protected override async Task<IRpcTransport> ConnectAsync() => await ConnectAsync(new InMemoryRpcDeduplicator(), unavailableWait: s_long);

    protected override Task ListeningAsync(IAsyncDisposable listener) =>
        ((RabbitMqTransport.Listener)listener).Ready.WaitAsync(s_long);

    /// <param name="unavailableWait">How long a publish waits for the broker (2 s: the tests that stop it fail fast and retry).</param>
    private async Task<RabbitMqTransport> ConnectAsync(IRpcDeduplicator deduplicator, TimeSpan? shutdownGrace = null, TimeSpan? unavailableWait = null,
        TimeSpan? confirmWait = null, ushort channelMax = 0)
    {
        var options = new RabbitMqOptions
        {
            Url = broker.Url,
            Exchange = _exchange,
            UnavailableWait = unavailableWait ?? TimeSpan.FromSeconds(2),
            ConfirmWait = confirmWait ?? TimeSpan.FromSeconds(30),
            RecoveryInterval = TimeSpan.FromMilliseconds(500),
            ShutdownGrace = shutdownGrace ?? TimeSpan.FromSeconds(5),
            ChannelMax = channelMax,
        };
        var transport = await RabbitMqTransport.ConnectAsync(options, deduplicator, LoggerFactory.CreateLogger<RabbitMqTransport>(), TimeProvider.System, CancellationToken.None);
        DisposeLater(transport);
        return transport;
    }

    /// <summary>
    /// Calls until one succeeds, for at most a minute after the broker accepts connections again. Idle, the client is back
    /// within a few recovery intervals; in a process whose thread pool runs work seconds late (a loaded 2-core machine) one
    /// reconnection, its AMQP handshake and then the topology's round trips, took 35–55 s.
    /// </summary>
    private async Task<byte[]> CallOnceRecoveredAsync(IRpcTransport transport, string topic, string payload)
    {
        var waited = Stopwatch.StartNew();
        using var give = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        string? unavailable = null;
        while (true)
        {
            try
            {
                return await transport.CallAsync(topic, "ping", Bytes(payload), TimeSpan.FromSeconds(10), give.Token);
            }
            catch (RpcUnavailableException ex) when (!give.IsCancellationRequested)
            {
                unavailable = ex.Message;
            }
            catch (Exception ex) when (give.IsCancellationRequested && ex is OperationCanceledException or RpcUnavailableException)
            {
                Assert.Fail($"No call on {topic} got through in {waited.Elapsed.TotalSeconds:F0} s after the broker was back (last: " +
                    $"{unavailable ?? "none"}); broker log: {BrokerLogTail()}");
            }
        }
    }

    /// <summary>The node's last log lines (a reconnection it closed shows there, e.g. <c>handshake_timeout</c>).</summary>
    private string BrokerLogTail()
    {
        try
        {
            return Tail(File.ReadAllText(Path.Combine(broker.Directory, "log", $"{broker.NodeName}.log")));
        }
        catch (IOException ex)
        {
            return ex.Message;
        }
    }

    [Fact]
    public async Task CallAsync_BrokerRestartedBetweenCalls_SameTransportCallsAndCastsAgain()
    {
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator());
        var casts = new RecordingDispatcher("casts");
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a"));
        await ListenAsync(transport, "compute.host1", casts);
        Assert.Equal("before", Text(await transport.CallAsync("conductor", "ping", Bytes("before"), s_long, CancellationToken.None)));

        await broker.RestartAsync();

        Assert.Equal("after", Text(await CallOnceRecoveredAsync(transport, "conductor", "after")));
        await transport.CastAsync("compute.host1", "stop_instance", Bytes("cast-after"), CancellationToken.None);
        // The cast is confirmed by the broker; a call queued behind it on the same topic proves it was delivered.
        await transport.CallAsync("compute.host1", "ping", Bytes("marker"), s_long, CancellationToken.None);
        Assert.Equal(["cast-after", "marker"], casts.Handled);
    }

    [Fact]
    public async Task CastAsync_BrokerConnectedButSlowerThanUnavailableWait_WaitsForTheConfirm()
    {
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator());
        var casts = new RecordingDispatcher("casts");
        await ListenAsync(transport, "conductor", casts);
        Assert.Equal("warm", Text(await transport.CallAsync("conductor", "ping", Bytes("warm"), s_long, CancellationToken.None)));

        // The broker stalls (stopped, its connections open) for longer than UnavailableWait (2 s): a loaded broker, not a lost one.
        Task cast;
        using (PauseBroker())
        {
            cast = transport.CastAsync("conductor", "live_migrate_instance", Bytes("slow"), CancellationToken.None);
            await Task.Delay(TimeSpan.FromSeconds(3.5));
            Assert.False(cast.IsCompleted, $"the cast ended while the broker was stopped: {cast.Exception?.InnerException?.Message}");
        }

        await cast.WaitAsync(s_long);
        await transport.CallAsync("conductor", "ping", Bytes("marker"), s_long, CancellationToken.None);
        Assert.Equal(["warm", "slow", "marker"], casts.Handled);
    }

    [Fact]
    public async Task CastAsync_BrokerConnectedButNoConfirmWithinConfirmWait_FailsTransientNamingIt()
    {
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator(), confirmWait: TimeSpan.FromSeconds(1));
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a"));
        Assert.Equal("warm", Text(await transport.CallAsync("conductor", "ping", Bytes("warm"), s_long, CancellationToken.None)));

        using (PauseBroker())
        {
            var error = await Assert.ThrowsAsync<RpcUnavailableException>(() =>
                transport.CastAsync("conductor", "live_migrate_instance", Bytes("stuck"), CancellationToken.None).WaitAsync(s_long));
            Assert.Contains("overloaded", error.Message, StringComparison.Ordinal);
            Assert.Contains("no confirm within 1 s", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task NotifyAsync_BrokerConnectedButAnsweringNothing_ReturnsWithoutWaitingForAConfirm()
    {
        // A heartbeat is not confirmed: the next one replaces it, and a confirm per heartbeat is a round trip and a wake-up.
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator(), confirmWait: TimeSpan.FromSeconds(30));
        var dispatcher = new RecordingDispatcher("a");
        await ListenAsync(transport, "conductor", dispatcher);
        Assert.Equal("warm", Text(await transport.CallAsync("conductor", "ping", Bytes("warm"), s_long, CancellationToken.None)));

        using (PauseBroker())
        {
            var clock = Stopwatch.StartNew();
            await transport.NotifyAsync("conductor", "service_report", Bytes("beat"), TimeSpan.FromSeconds(30), CancellationToken.None).WaitAsync(s_long);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the notification waited {clock.Elapsed.TotalSeconds:0.0} s for a paused broker");
        }
        // Sent all the same: handled once the broker runs again.
        await WaitUntilAsync(() => dispatcher.Handled.Contains("beat"), "the notification's delivery after the broker resumed");
    }

    /// <summary>Stops the broker's Erlang VM (SIGSTOP) until disposed (SIGCONT): its sockets stay open, nothing answers.</summary>
    private IDisposable PauseBroker()
    {
        var beam = LocalRabbitMq.ReadPid(Path.Combine(broker.Directory, "pid")) ?? throw new InvalidOperationException("the broker wrote no pid file");
        Assert.Equal(0, ProcessSignals.Send(beam, "STOP"));
        return new Resume(beam);
    }

    private sealed class Resume(int pid) : IDisposable
    {
        public void Dispose() => ProcessSignals.Send(pid, "CONT");
    }

    [Fact]
    public async Task CallAsync_BrokerDown_FailsTransientWithinBoundThenRecovers()
    {
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator());
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a"));
        await broker.StopAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            var ex = await Assert.ThrowsAsync<RpcUnavailableException>(() =>
                transport.CallAsync("conductor", "ping", Bytes("down"), s_long, CancellationToken.None));
            var castEx = await Assert.ThrowsAsync<RpcUnavailableException>(() =>
                transport.CastAsync("conductor", "ping", Bytes("down"), CancellationToken.None));
            clock.Stop();

            Assert.True(ex.IsTransient);
            Assert.Equal(503, ex.HttpStatus);
            Assert.Equal("serviceUnavailable", ex.FaultName);
            Assert.Contains($"127.0.0.1:{broker.Port}", ex.Message);
            Assert.DoesNotContain("guest:guest", ex.Message);
            Assert.True(castEx.IsTransient);
            // Two operations, each bounded by UnavailableWait (2 s): never the call's 30 s timeout.
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(12), $"unavailable after {clock.Elapsed}");
        }
        finally
        {
            await broker.StartAsync();
        }

        Assert.Equal("back", Text(await CallOnceRecoveredAsync(transport, "conductor", "back")));
        // Every try while it was down was refused: the reason is logged once, not at each try (every 500 ms here).
        Assert.Single(LoggedMessages, m => m == $"Reconnecting to the message broker at {transport.BrokerDisplay} failed (Connection refused); trying again");
    }

    [Fact]
    public async Task Handshake_ClientSlowerThanRabbitMqsDefault10s_BrokerKeepsTheConnection()
    {
        // A loaded client process answers connection.start late. RabbitMQ's default closes the connection 10 s after its
        // accept, which made every reconnection of a test run on a busy 2-core machine start over until none got through.
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, broker.Port);
        var stream = client.GetStream();
        await stream.WriteAsync("AMQP\0\0\u0009\u0001"u8.ToArray());
        var buffer = new byte[4096];
        Assert.True(await stream.ReadAsync(buffer).AsTask().WaitAsync(s_long) > 0, "no connection.start");

        await Task.Delay(TimeSpan.FromSeconds(12));

        // Still open: a read waits for the client's next frame instead of ending (0 bytes) or failing (reset).
        var next = stream.ReadAsync(buffer).AsTask();
        await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(1)));
        Assert.False(next.IsCompleted, "the broker closed the connection 12 s into its handshake (handshake_timeout)");
        client.Dispose();
        await next.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task Listen_MoreLongHandlersThanOldPrefetchEachCallingItsOwnTopic_AllRunAtOnceAndComplete()
    {
        // 240 moves at once on 20 hosts: every conductor slot held by a live_migrate_instance waiting on a compute that
        // waits on an action_event call queued behind more live_migrate_instance messages. A bounded prefetch (it was
        // 64) deadlocks that until the calls time out; oslo.messaging's rabbit_qos_prefetch_count is 0 (no limit) too.
        const int Outer = 100;
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator());
        var started = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a", async (method, payload, ct) =>
        {
            if (method == "inner")
            {
                return payload;
            }
            if (Interlocked.Increment(ref started) == Outer)
            {
                all.TrySetResult();
            }
            await all.Task.WaitAsync(ct);
            return await transport.CallAsync("conductor", "inner", payload, s_long, ct);
        }));

        var calls = Enumerable.Range(0, Outer).Select(i => transport.CallAsync("conductor", "outer", Bytes($"m{i}"), s_long, CancellationToken.None));
        var replies = await Task.WhenAll(calls);

        Assert.Equal(Enumerable.Range(0, Outer).Select(i => $"m{i}"), replies.Select(Text));
        Assert.Equal(0, new RabbitMqOptions().Prefetch);
    }

    [Fact]
    public async Task Listen_StartFailingOverAndOver_ClosesEachTrysChannelSoOtherTopicsStillListen()
    {
        // A connection of 6 channels: the transport's own three (publish, calls, replies) and three for listeners. A queue
        // name longer than AMQP's 255 bytes fails in the client, leaving the try's channel open unless the listener closes it.
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator(), channelMax: 6);
        var failing = transport.Listen($"compute.{new string('x', 300)}", new RecordingDispatcher("never"));
        DisposeLater(failing);
        await Task.Delay(TimeSpan.FromSeconds(3)); // six tries at the 500 ms recovery interval

        await ListenAsync(transport, "compute.ok", new RecordingDispatcher("ok"));

        Assert.Equal("fine", Text(await transport.CallAsync("compute.ok", "ping", Bytes("fine"), s_long, CancellationToken.None)));
        Assert.False(((RabbitMqTransport.Listener)failing).Ready.IsCompleted);
    }

    [Fact]
    public async Task BusUpGauge_BrokerStoppedThenStarted_ZeroWhileDownOneAfterReconnection()
    {
        using var recorder = new FerryMeterRecorder();
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator());
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a"));
        Assert.Equal(1, BusUp(recorder));

        await broker.StopAsync();
        try
        {
            await WaitUntilAsync(() => BusUp(recorder) == 0, "ferry.bus.up 0 while the broker is stopped");
        }
        finally
        {
            await broker.StartAsync();
        }

        await WaitUntilAsync(() => BusUp(recorder) == 1, "ferry.bus.up 1 after the connection recovered");
        Assert.Equal("back", Text(await CallOnceRecoveredAsync(transport, "conductor", "back")));
        await transport.DisposeAsync();
        Assert.DoesNotContain("rabbitmq", BusMetrics.Current().Keys); // a transport gone reports nothing
    }

    /// <summary>ferry.bus.up{transport="rabbitmq"} as a scrape reads it now (observable gauges are read on demand).</summary>
    private static double BusUp(FerryMeterRecorder recorder)
    {
        recorder.Measurements.Clear();
        recorder.Observe();
        return recorder.ValuesOf("ferry.bus.up", ("transport", "rabbitmq")).Single();
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var started = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(started.Elapsed < s_long, $"{what}: not reached after {started.Elapsed.TotalSeconds:F1} s");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task CallAsync_BrokerRestartedWhileHandlerRuns_CallSucceedsAndHandlerRunsOnce()
    {
        // The request sent again after the restart must not fail as unavailable because a loaded broker confirms it slowly.
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator(), unavailableWait: s_long);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var dispatcher = new RecordingDispatcher("a", async (_, p, _) =>
        {
            started.TrySetResult();
            await release.Task;
            return p;
        });
        await ListenAsync(transport, "compute.host1", dispatcher);

        // The call's deadline is also its message's TTL, and it has to outlast the restart (the request is sent again
        // after it): on a loaded 2-core machine a broker stop and start take minutes, not the seconds they take idle.
        var call = transport.CallAsync("compute.host1", "pre_live_migration", Bytes("during"), s_restart, CancellationToken.None);
        await started.Task.WaitAsync(s_long);
        var restart = Stopwatch.StartNew();
        await broker.RestartAsync();
        restart.Stop();
        release.TrySetResult();

        try
        {
            Assert.Equal("during", Text(await call));
        }
        catch (RpcTimeoutException ex)
        {
            Assert.Fail($"{ex.Message} (the restart took {restart.Elapsed.TotalSeconds:F0} s); handled [{string.Join(", ", dispatcher.Handled)}]; broker: {Tail(broker.Output())}");
        }
        // The unacked request came back after the restart: the deduplicator answered it instead of a second run.
        Assert.Equal("next", Text(await CallOnceRecoveredAsync(transport, "compute.host1", "next")));
        Assert.Equal(["during", "next"], dispatcher.Handled);
    }

    [Fact]
    public async Task Listen_ConsumerStopsBeforeAck_OtherReplicaGetsMessageAndSharedDeduplicatorRunsItOnce()
    {
        var shared = new InMemoryRpcDeduplicator();

        var (reply, runs) = await ReplicaDiesBeforeAckAsync(() => ConnectAsync(shared, shutdownGrace: TimeSpan.FromMilliseconds(300)), () => ConnectAsync(shared));

        Assert.Equal(("dying:m1", 1), (reply, runs));
    }

    [Fact]
    public async Task Listen_ReplicaFinishesButDiesBeforeAck_OtherReplicaAnswersFromTheDatabaseWithoutRunningAgain()
    {
        // Two replicas: each its own transport, deduplicator and connection, one database between them (SQLite here: the
        // PostgreSQL server of this test process belongs to its own collection; the store is tested on both engines).
        using var database = new TestDatabase(DatabaseEngine.Sqlite);
        var first = database.Open();
        DatabaseSchema.Sync(first);
        var second = database.Open();
        using var dyingClaims = new DatabaseRpcDeduplicator(() => first, TimeProvider.System);
        using var survivorClaims = new DatabaseRpcDeduplicator(() => second, TimeProvider.System);
        async Task<RabbitMqTransport> Replica(DatabaseRpcDeduplicator claims, TimeSpan? shutdownGrace = null)
        {
            var transport = await ConnectAsync(new InMemoryRpcDeduplicator(), shutdownGrace);
            transport.ReplicaTopicsDeduplicator = claims;
            return transport;
        }

        var (reply, runs) = await ReplicaDiesBeforeAckAsync(() => Replica(dyingClaims, TimeSpan.FromMilliseconds(300)), () => Replica(survivorClaims));

        Assert.Equal(("dying:m1", 1), (reply, runs));
    }

    /// <summary>
    /// A conductor call whose handler has done its work when its replica goes away before the ack; the other replica gets
    /// the redelivery. Returns the caller's reply and how many times a handler ran.
    /// </summary>
    private async Task<(string Reply, int Runs)> ReplicaDiesBeforeAckAsync(Func<Task<RabbitMqTransport>> dyingReplica, Func<Task<RabbitMqTransport>> survivingReplica)
    {
        var dying = await dyingReplica();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        // Ignores its cancellation token: the side effect is done, only the ack is missing when the consumer goes.
        await ListenAsync(dying, "conductor", new RecordingDispatcher("dying", async (_, p, _) =>
        {
            Interlocked.Increment(ref runs);
            started.TrySetResult();
            await release.Task;
            return Bytes($"dying:{Text(p)}");
        }));
        var caller = await ConnectAsync();
        var call = caller.CallAsync("conductor", "migrate_server", Bytes("m1"), TimeSpan.FromSeconds(60), CancellationToken.None);
        await started.Task.WaitAsync(s_long);

        var survivor = await survivingReplica();
        await ListenAsync(survivor, "conductor", new RecordingDispatcher("survivor", (_, p, _) =>
        {
            Interlocked.Increment(ref runs);
            return Task.FromResult(Bytes($"survivor:{Text(p)}"));
        }));
        await dying.DisposeAsync();
        release.TrySetResult();

        var reply = Text(await call.WaitAsync(s_long));
        return (reply, Volatile.Read(ref runs));
    }

    [Fact]
    public async Task Listen_ConsumerStopsBeforeAckWithoutSharedDeduplicator_OtherReplicaRunsItAgain()
    {
        // The same story with a deduplicator per replica: the redelivery runs again. This is what the shared one prevents.
        var dying = await ConnectAsync(new InMemoryRpcDeduplicator(), shutdownGrace: TimeSpan.FromMilliseconds(300));
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        await ListenAsync(dying, "conductor", new RecordingDispatcher("dying", async (_, p, _) =>
        {
            Interlocked.Increment(ref runs);
            started.TrySetResult();
            await release.Task;
            return p;
        }));
        var caller = await ConnectAsync();
        var call = caller.CallAsync("conductor", "migrate_server", Bytes("m1"), TimeSpan.FromSeconds(60), CancellationToken.None);
        await started.Task.WaitAsync(s_long);
        var survivor = await ConnectAsync(new InMemoryRpcDeduplicator());
        await ListenAsync(survivor, "conductor", new RecordingDispatcher("survivor", (_, p, _) =>
        {
            Interlocked.Increment(ref runs);
            return Task.FromResult(p);
        }));

        await dying.DisposeAsync();
        await call.WaitAsync(s_long);
        release.TrySetResult();

        Assert.Equal(2, Volatile.Read(ref runs));
    }

    [Fact]
    public async Task Listen_IdempotentCallRedeliveredAfterReplicaDies_RunsAgainAndWritesNoDeduplicationRow()
    {
        var (reply, runs, rows) = await SharedTopicReplicaDiesBeforeAckAsync(idempotent: true);

        // The survivor ran it again instead of waiting for the dying replica's claim; nothing was written to rpc_messages.
        Assert.Equal(("survivor i1", 2, 0L), (reply, runs, rows));
    }

    [Fact]
    public async Task Listen_NotIdempotentCallRedeliveredAfterReplicaDies_RunsOnceThroughTheDatabaseRow()
    {
        var (reply, runs, rows) = await SharedTopicReplicaDiesBeforeAckAsync(idempotent: false);

        Assert.Equal(("dying i1", 1, 1L), (reply, runs, rows));
    }

    /// <summary>
    /// A conductor call to an <see cref="RpcServer"/> whose handler is declared idempotent or not, on two replicas sharing a
    /// <see cref="DatabaseRpcDeduplicator"/>: the first runs it and stops before its ack, the other gets the redelivery.
    /// Returns the caller's reply, how many times a handler ran, and the rows left in rpc_messages.
    /// </summary>
    private async Task<(string Reply, int Runs, long Rows)> SharedTopicReplicaDiesBeforeAckAsync(bool idempotent)
    {
        using var database = new TestDatabase(DatabaseEngine.Sqlite);
        var first = database.Open();
        DatabaseSchema.Sync(first);
        var second = database.Open();
        using var dyingClaims = new DatabaseRpcDeduplicator(() => first, TimeProvider.System);
        using var survivorClaims = new DatabaseRpcDeduplicator(() => second, TimeProvider.System);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;
        var dying = await ConnectAsync(new InMemoryRpcDeduplicator(), TimeSpan.FromMilliseconds(300));
        dying.ReplicaTopicsDeduplicator = dyingClaims;
        // Ignores its cancellation token: the work is done, only the ack is missing when the consumer goes.
        await ListenAsync(dying, "conductor", new RpcServer().On<InstanceGetRequest, InstanceGetRequest>("instance_get", async (r, _) =>
        {
            Interlocked.Increment(ref runs);
            started.TrySetResult();
            await release.Task;
            return r with { Uuid = "dying " + r.Uuid };
        }, idempotent));
        var caller = await ConnectAsync();
        var request = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new InstanceGetRequest("i1"), RpcJson.TypeInfo<InstanceGetRequest>());
        var call = caller.CallAsync("conductor", "instance_get", request, TimeSpan.FromSeconds(60), CancellationToken.None);
        await started.Task.WaitAsync(s_long);

        var survivor = await ConnectAsync(new InMemoryRpcDeduplicator());
        survivor.ReplicaTopicsDeduplicator = survivorClaims;
        await ListenAsync(survivor, "conductor", new RpcServer().On<InstanceGetRequest, InstanceGetRequest>("instance_get", (r, _) =>
        {
            Interlocked.Increment(ref runs);
            return Task.FromResult(r with { Uuid = "survivor " + r.Uuid });
        }, idempotent));
        var dyingStopped = dying.DisposeAsync().AsTask();
        if (idempotent)
        {
            // The redelivery runs at once: the dying replica's run is still blocked, and nothing tells the survivor to wait for it.
            var early = await call.WaitAsync(s_long);
            release.TrySetResult();
            await dyingStopped;
            return (System.Text.Json.JsonSerializer.Deserialize(early, RpcJson.TypeInfo<InstanceGetRequest>())!.Uuid, Volatile.Read(ref runs), RowsOf(first));
        }
        await dyingStopped;
        release.TrySetResult();
        var reply = await call.WaitAsync(s_long);
        return (System.Text.Json.JsonSerializer.Deserialize(reply, RpcJson.TypeInfo<InstanceGetRequest>())!.Uuid, Volatile.Read(ref runs), RowsOf(first));

        static long RowsOf(FerryDatabase db) => db.Read(c =>
        {
            using var count = FerryDatabase.Command(c, null, "SELECT COUNT(*) FROM rpc_messages");
            return Convert.ToInt64(count.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        });
    }

    [Fact]
    public async Task Publish_CallAndNotificationTransientCastPersistent_AsTheBrokerHoldsThem()
    {
        var transport = await ConnectAsync(new InMemoryRpcDeduplicator());
        // Nobody listens on the topic: the messages wait in its durable queue, where a plain AMQP client reads them.
        using var giveUp = new CancellationTokenSource();
        var call = transport.CallAsync("compute.idle", "instance_get", Bytes("call"), s_long, giveUp.Token);
        await transport.CastAsync("compute.idle", "live_migration", Bytes("cast"), CancellationToken.None);
        await transport.NotifyAsync("compute.idle", "service_report", Bytes("beat"), TimeSpan.FromMinutes(5), CancellationToken.None);

        var factory = new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(broker.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var modes = new Dictionary<string, RabbitMQ.Client.DeliveryModes>();
        var expirations = new Dictionary<string, string?>();
        var deadline = Stopwatch.StartNew();
        while (modes.Count < 3)
        {
            Assert.True(deadline.Elapsed < s_long, $"the queue held only {string.Join(", ", modes.Keys)}");
            if (await channel.BasicGetAsync($"{_exchange}.compute.idle", autoAck: true) is { } message)
            {
                modes[message.BasicProperties.Type!] = message.BasicProperties.DeliveryMode;
                expirations[message.BasicProperties.Type!] = message.BasicProperties.Expiration;
            }
            else
            {
                await Task.Delay(50);
            }
        }
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        Assert.Equal(RabbitMQ.Client.DeliveryModes.Transient, modes["instance_get"]);
        Assert.Equal(RabbitMQ.Client.DeliveryModes.Persistent, modes["live_migration"]);
        Assert.Equal(RabbitMQ.Client.DeliveryModes.Transient, modes["service_report"]);
        Assert.Null(expirations["live_migration"]);
        Assert.InRange(long.Parse(expirations["service_report"]!, System.Globalization.CultureInfo.InvariantCulture), 1, 300_000);
    }

    [Fact]
    public async Task ConnectAsync_NoBrokerAtUrl_OneLineNamingUrlWithoutPasswordAndSetting()
    {
        var closedPort = FreePort();
        var options = new RabbitMqOptions { Url = $"rabbitmq://ferry:s3cret@127.0.0.1:{closedPort}/prod" };

        var ex = await Assert.ThrowsAsync<RpcUnavailableException>(() =>
            RabbitMqTransport.ConnectAsync(options, new InMemoryRpcDeduplicator(), NullLogger<RabbitMqTransport>.Instance, TimeProvider.System, CancellationToken.None));

        Assert.StartsWith($"Cannot reach the message broker at rabbitmq://ferry@127.0.0.1:{closedPort}/prod: ", ex.Message);
        Assert.Contains(RabbitMqOptions.SettingName, ex.Message);
        Assert.DoesNotContain("s3cret", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.True(ex.IsTransient);
    }

    private static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static string Tail(string text) => string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(5));
}
