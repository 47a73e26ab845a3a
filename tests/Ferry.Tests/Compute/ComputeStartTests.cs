using Ferry.Compute;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Rpc;
using Ferry.Core.Rpc.Conductor;
using Ferry.Tests.Placement;
using Ferry.Tests.Shared;
using Ferry.Virt.Fake;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Compute;

/// <summary>A compute agent's start against a conductor that does not answer at first (placement is real, on loopback).</summary>
public sealed class ComputeStartTests(PlacementApiFixture placement) : IClassFixture<PlacementApiFixture>, IDisposable
{
    private readonly string _root = TestTempNames.Directory("compute-start");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StartAsync_ConductorUnreachableThenBack_StartsOnceItAnswers(bool timeout)
    {
        var transport = new InProcessTransport(NullLogger<InProcessTransport>.Instance);
        var conductor = new StubConductor();
        await using var listener = transport.Listen(Topics.Conductor, conductor.CreateServer());
        // The first two starts' calls fail as a busy or absent broker fails them (a timeout's after the conductor saved the
        // node: the third start finds it, with a uuid other than the one it proposed); the agent starts over each time.
        var flaky = new FailingCalls(transport, failing: [1, 2], timeout);
        var host = timeout ? "start-host-timeout" : "start-host-unavailable"; // one placement for both cases: a provider each
        await using var compute = new ComputeManager(new ComputeOptions { Host = host },
            new FakeDriver(new FakeDriverOptions { HostName = host, InstancesPath = Path.Combine(_root, host), TimeScale = 0 }),
            flaky, new RpcOptions(), placement.Client, TimeProvider.System, NullLoggerFactory.Instance);

        await compute.StartAsync(CancellationToken.None);

        Assert.True(compute.IsRunning);
        Assert.Equal(2, flaky.Failed);
        Assert.Equal(conductor.NodeUuid, compute.NodeUuid);
        Assert.NotNull(await placement.Service.GetProviderAsync(conductor.NodeUuid!, CancellationToken.None));
    }

    [Fact]
    public async Task StartAsync_PlacementAnswers503ThenBack_StartsOnceItAnswers()
    {
        var transport = new InProcessTransport(NullLogger<InProcessTransport>.Instance);
        var conductor = new StubConductor();
        await using var listener = transport.Listen(Topics.Conductor, conductor.CreateServer());
        // Placement's first two requests fail as an API whose database refuses more connections fails them.
        var busy = new BusyPlacement(failFirst: 2) { InnerHandler = new HttpClientHandler() };
        using var http = new HttpClient(busy) { BaseAddress = placement.Http.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        const string Host = "start-host-placement-busy";
        await using var compute = new ComputeManager(new ComputeOptions { Host = Host },
            new FakeDriver(new FakeDriverOptions { HostName = Host, InstancesPath = Path.Combine(_root, Host), TimeScale = 0 }),
            transport, new RpcOptions(), new Ferry.Core.Placement.PlacementHttpClient(http, authToken: "test-token"), TimeProvider.System, NullLoggerFactory.Instance);

        await compute.StartAsync(CancellationToken.None);

        Assert.True(compute.IsRunning);
        Assert.Equal(2, busy.Failed);
        Assert.NotNull(await placement.Service.GetProviderAsync(conductor.NodeUuid!, CancellationToken.None));
    }

    private sealed class BusyPlacement(int failFirst) : DelegatingHandler
    {
        private int _requests;

        public int Failed { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _requests) > failFirst)
            {
                return base.SendAsync(request, cancellationToken);
            }
            Failed++;
            return Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable)
            {
                Content = new StringContent(
                    """{"errors": [{"status": 503, "title": "Service Unavailable", "detail": "Cannot reach the database: 53300: sorry, too many clients already", "code": "placement.undefined_code"}]}""",
                    System.Text.Encoding.UTF8, "application/json"),
            });
        }
    }

    /// <summary>Answers an agent's start as a conductor with an empty database does.</summary>
    private sealed class StubConductor
    {
        public string? NodeUuid { get; private set; }

        public RpcServer CreateServer() => new RpcServer()
            .On<ComputeStartRequest, ComputeStartReply>("compute_start", (request, _) =>
            {
                NodeUuid ??= request.Node.Uuid;
                return Task.FromResult(new ComputeStartReply(new ServiceReportReply(1, false, false), request.Node with { Id = 1, Uuid = NodeUuid },
                    new HostRecoveryState([], [])));
            });
    }

    private sealed class FailingCalls(IRpcTransport inner, int[] failing, bool failWithTimeout) : IRpcTransport
    {
        private int _calls;

        public int Failed { get; private set; }

        public Task CastAsync(string topic, string method, byte[] payload, CancellationToken cancellationToken) =>
            inner.CastAsync(topic, method, payload, cancellationToken);

        /// <summary>A failing call times out after the conductor handled it (its reply lost), or never reaches it.</summary>
        public async Task<byte[]> CallAsync(string topic, string method, byte[] payload, TimeSpan timeout, CancellationToken cancellationToken)
        {
            if (topic != Topics.Conductor || !failing.Contains(Interlocked.Increment(ref _calls)))
            {
                return await inner.CallAsync(topic, method, payload, timeout, cancellationToken);
            }
            Failed++;
            if (!failWithTimeout)
            {
                throw new RpcUnavailableException($"The message broker is overloaded: {method} to {topic} had no confirm");
            }
            await inner.CallAsync(topic, method, payload, timeout, cancellationToken);
            throw new RpcTimeoutException($"Timed out waiting for a reply to {method} on {topic}");
        }

        public IAsyncDisposable Listen(string topic, IRpcDispatcher dispatcher) => inner.Listen(topic, dispatcher);
    }
}
