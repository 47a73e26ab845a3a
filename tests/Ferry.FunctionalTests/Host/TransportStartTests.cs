using System.Net;
using System.Net.Sockets;
using Ferry.Core.Errors;
using Ferry.Host;
using Ferry.Host.Messaging;
using Ferry.Tests.Shared;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests.Host;

public sealed class TransportStartTests
{
    [Fact]
    public async Task StartAsync_NoBrokerAtTransportUrl_OneLineNamingUrlAndFlag()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var closedPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var data = TestTempNames.Directory("test");
        var options = new FerryHostOptions
        {
            DataDirectory = data,
            ComputeApiPort = 0,
            PlacementPort = 0,
            IdentityPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            RabbitMq = new RabbitMqOptions { Url = $"rabbitmq://ferry:s3cret@127.0.0.1:{closedPort}/prod" },
        };
        try
        {
            await using var ferry = AllInOne.Build(options, logging => logging.SetMinimumLevel(LogLevel.None));

            var ex = await Assert.ThrowsAsync<RpcUnavailableException>(() => ferry.StartAsync(CancellationToken.None));

            Assert.StartsWith($"Cannot reach the message broker at rabbitmq://ferry@127.0.0.1:{closedPort}/prod: ", ex.Message);
            Assert.EndsWith("set transport (FERRY_TRANSPORT or --transport) to a running RabbitMQ", ex.Message);
            Assert.DoesNotContain("s3cret", ex.Message);
            Assert.DoesNotContain('\n', ex.Message);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
