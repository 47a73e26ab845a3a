using System.Diagnostics;
using System.Text;
using Ferry.Core.Errors;
using Ferry.Core.Rpc;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Core.Rpc;

/// <summary>
/// What every <see cref="IRpcTransport"/> must do, run over each implementation: the in-process one that
/// `./ferry up` uses and the RabbitMQ one of the distributed shape.
/// </summary>
public abstract class RpcTransportContractTests : IAsyncLifetime
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(30);
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly ScopeCapturingLoggerProvider _logs = new();

    protected RpcTransportContractTests()
    {
        LoggerFactory = Microsoft.Extensions.Logging.LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace));
    }

    /// <summary>The factory the transports log through: its lines keep their scopes, for the tests to read.</summary>
    protected ILoggerFactory LoggerFactory { get; }

    /// <summary>What the transports and handlers logged so far, in order.</summary>
    protected IEnumerable<string> LoggedMessages => _logs.Lines.Select(l => l.Message);

    /// <summary>A transport on the same bus as every other one this test made (a new client of the broker, or the one in-process bus).</summary>
    protected abstract Task<IRpcTransport> ConnectAsync();

    /// <summary>Waits until a listener is registered (a broker consumer starts in the background).</summary>
    protected virtual Task ListeningAsync(IAsyncDisposable listener) => Task.CompletedTask;

    protected void DisposeLater(IAsyncDisposable disposable) => _disposables.Add(disposable);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        for (var i = _disposables.Count - 1; i >= 0; i--)
        {
            await _disposables[i].DisposeAsync();
        }
        LoggerFactory.Dispose();
    }

    protected static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    protected static string Text(byte[] b) => Encoding.UTF8.GetString(b);

    protected async Task<IAsyncDisposable> ListenAsync(IRpcTransport transport, string topic, IRpcDispatcher dispatcher)
    {
        var listener = transport.Listen(topic, dispatcher);
        DisposeLater(listener);
        await ListeningAsync(listener);
        return listener;
    }

    [Fact]
    public async Task CallAsync_ListenerReplies_ReturnsReply()
    {
        var transport = await ConnectAsync();
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a", (m, p, _) => Task.FromResult(Bytes($"{m}:{Text(p)}"))));

        var reply = await transport.CallAsync("conductor", "ping", Bytes("hello"), s_long, CancellationToken.None);

        Assert.Equal("ping:hello", Text(reply));
    }

    [Fact]
    public async Task CastAsync_ListenerOnTopic_RunsHandler()
    {
        var transport = await ConnectAsync();
        var ran = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await ListenAsync(transport, "compute.host1", new RecordingDispatcher("a", (m, p, _) =>
        {
            ran.TrySetResult($"{m}:{Text(p)}");
            return Task.FromResult(Array.Empty<byte>());
        }));

        await transport.CastAsync("compute.host1", "stop_instance", Bytes("i-1"), CancellationToken.None);

        Assert.Equal("stop_instance:i-1", await ran.Task.WaitAsync(s_long));
    }

    [Fact]
    public async Task CastAsync_BeforeAnyListener_WaitsForListener()
    {
        var transport = await ConnectAsync();
        await transport.CastAsync("compute.late", "stop_instance", Bytes("i-2"), CancellationToken.None);
        var ran = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);

        await ListenAsync(transport, "compute.late", new RecordingDispatcher("a", (_, p, _) =>
        {
            ran.TrySetResult(Text(p));
            return Task.FromResult(Array.Empty<byte>());
        }));

        Assert.Equal("i-2", await ran.Task.WaitAsync(s_long));
    }

    [Fact]
    public async Task CallAsync_NobodyListening_ThrowsRpcTimeoutException()
    {
        var transport = await ConnectAsync();

        var ex = await Assert.ThrowsAsync<RpcTimeoutException>(() =>
            transport.CallAsync("compute.nobody", "ping", Bytes("x"), TimeSpan.FromMilliseconds(300), CancellationToken.None));

        Assert.Contains("ping on compute.nobody", ex.Message);
    }

    [Fact]
    public async Task CallAsync_HandlerThrows_RebuildsExceptionWithItsType()
    {
        var transport = await ConnectAsync();
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a", (_, _, _) =>
            throw new InstanceInvalidStateException("Cannot 'migrate' instance i-1 while it is in vm_state building")));

        var ex = await Assert.ThrowsAsync<InstanceInvalidStateException>(() =>
            transport.CallAsync("conductor", "migrate", Bytes("x"), s_long, CancellationToken.None));

        Assert.Equal("Cannot 'migrate' instance i-1 while it is in vm_state building", ex.Message);
        Assert.Equal(409, ex.HttpStatus);
    }

    [Fact]
    public async Task CallAsync_HandlerCallsAnotherTopic_NestedCallCompletes()
    {
        var transport = await ConnectAsync();
        // The destination's check calls the source while the conductor waits on the destination.
        await ListenAsync(transport, "compute.src", new RecordingDispatcher("src", (_, p, _) => Task.FromResult(Bytes($"src({Text(p)})"))));
        await ListenAsync(transport, "compute.dst", new RecordingDispatcher("dst", async (_, p, ct) =>
            Bytes($"dst({Text(await transport.CallAsync("compute.src", "check_source", p, s_long, ct))})")));

        var replies = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            transport.CallAsync("compute.dst", "check_destination", Bytes($"{i}"), s_long, CancellationToken.None)));

        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"dst(src({i}))"), replies.Select(Text));
    }

    [Fact]
    public async Task CallAsync_TwoListenersOnTopic_EachMessageRunsOnceAndAllRun()
    {
        var a = new RecordingDispatcher("a");
        var b = new RecordingDispatcher("b");
        await ListenAsync(await ConnectAsync(), "scheduler", a);
        await ListenAsync(await ConnectAsync(), "scheduler", b);
        var caller = await ConnectAsync();

        var sent = Enumerable.Range(0, 40).Select(i => $"m{i}").ToList();
        await Task.WhenAll(sent.Select(m => caller.CallAsync("scheduler", "select_destinations", Bytes(m), s_long, CancellationToken.None)));

        var handled = a.Handled.Concat(b.Handled).ToList();
        Assert.Equal(sent.Order(), handled.Order());
        Assert.Empty(a.Handled.Intersect(b.Handled));
    }

    [Fact]
    public async Task CallAsync_CallerHasActivity_HandlerRunsInCallersTrace()
    {
        var transport = await ConnectAsync();
        var seen = new TaskCompletionSource<(ActivityTraceId Trace, ActivitySpanId Parent)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a", (_, p, _) =>
        {
            seen.TrySetResult((Activity.Current!.TraceId, Activity.Current.ParentSpanId));
            return Task.FromResult(p);
        }));

        using var caller = new Activity("api request").SetIdFormat(ActivityIdFormat.W3C).Start();
        await transport.CallAsync("conductor", "live_migrate_instance", Bytes("x"), s_long, CancellationToken.None);
        caller.Stop();

        var (trace, parent) = await seen.Task.WaitAsync(s_long);
        Assert.Equal(caller.TraceId, trace);
        Assert.Equal(caller.SpanId, parent);
    }

    [Fact]
    public async Task CallAsync_HandlerLogs_LineCarriesTraceIdMessageIdAndMethod()
    {
        var transport = await ConnectAsync();
        var handlerLog = LoggerFactory.CreateLogger("Ferry.Compute.ComputeManager");
        await ListenAsync(transport, "compute.host1", new RecordingDispatcher("a", (_, p, _) =>
        {
            handlerLog.LogInformation("handling {Payload}", Text(p));
            return Task.FromResult(p);
        }));

        using var caller = new Activity("conductor task").SetIdFormat(ActivityIdFormat.W3C).Start();
        await transport.CallAsync("compute.host1", "check_can_live_migrate_destination", Bytes("scoped"), s_long, CancellationToken.None);
        caller.Stop();

        var line = Assert.Single(_logs.Lines, l => l.Message == "handling scoped");
        Assert.Equal(caller.TraceId.ToString(), line.Scope["TraceId"]);
        Assert.Equal("check_can_live_migrate_destination", line.Scope["RpcMethod"]);
        Assert.Matches("^[0-9a-f]{32}$", (string)line.Scope["MessageId"]!);
    }

    [Fact]
    public async Task CastAsync_CallerHasNoActivity_HandlerGetsATrace()
    {
        Activity.Current = null;
        var transport = await ConnectAsync();
        var seen = new TaskCompletionSource<ActivityTraceId>(TaskCreationOptions.RunContinuationsAsynchronously);
        await ListenAsync(transport, "conductor", new RecordingDispatcher("a", (_, p, _) =>
        {
            seen.TrySetResult(Activity.Current?.TraceId ?? default);
            return Task.FromResult(p);
        }));

        await transport.CastAsync("conductor", "build_instances", Bytes("x"), CancellationToken.None);

        Assert.NotEqual(default, await seen.Task.WaitAsync(s_long));
    }

    [Fact]
    public async Task CallAsync_ExpiredBeforeDelivery_HandlerNeverRuns()
    {
        var transport = await ConnectAsync();
        await Assert.ThrowsAsync<RpcTimeoutException>(() =>
            transport.CallAsync("compute.slow", "reboot_instance", Bytes("expired"), TimeSpan.FromMilliseconds(200), CancellationToken.None));
        var dispatcher = new RecordingDispatcher("a");

        var listener = transport.Listen("compute.slow", dispatcher);
        await ListeningAsync(listener);
        await transport.CallAsync("compute.slow", "reboot_instance", Bytes("fresh"), s_long, CancellationToken.None);
        // Stopping the listener waits for the handlers it started, so a run of the expired message would be recorded by now.
        await listener.DisposeAsync();

        Assert.Equal(["fresh"], dispatcher.Handled);
    }
}
