using System.Collections;
using Ferry.Host;
using Ferry.Host.Configuration;
using Ferry.Host.Messaging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Host;

/// <summary>The <c>transport</c> setting (<c>--transport</c>, <c>FERRY_TRANSPORT</c>): which bus a role runs on.</summary>
public sealed class TransportUrlCommandLineTests
{
    private static FerryLoadResult Load(params string[] args) =>
        FerryConfiguration.Load(FerryCommandLine.ParseProgram(args), new Hashtable(), defaultConfigFile: null);

    [Fact]
    public void Load_NoTransport_InProcessBus()
    {
        var options = Load("all-in-one").Options;

        Assert.True(options.UsesInProcessTransport);
        Assert.IsNotType<RabbitMqTransport>(FerryInfrastructure.CreateTransport(options, NullLoggerFactory.Instance));
    }

    [Theory]
    [InlineData("rabbitmq://ferry:s3cret@mq:5673/prod")]
    [InlineData("amqp://ferry:s3cret@mq/")]
    public void Load_RabbitMqUrl_RabbitMqBusAtThatUrl(string url)
    {
        var loaded = Load("all-in-one", "--transport", url);

        Assert.Empty(loaded.Errors);
        Assert.Equal(url, loaded.Options.Transport);
        Assert.False(loaded.Options.UsesInProcessTransport);
        Assert.IsType<RabbitMqTransport>(FerryInfrastructure.CreateTransport(loaded.Options, NullLoggerFactory.Instance));
    }

    [Theory]
    [InlineData("http://ferry:s3cret@mq/")]
    [InlineData("mq:5672")]
    public void Load_NotARabbitMqUrl_OneLineNamingTheFlagWithoutThePassword(string url)
    {
        var error = Assert.Single(Load("conductor", "--transport", url).Errors);

        Assert.StartsWith("--transport: '", error);
        Assert.EndsWith("is neither inprocess nor a rabbitmq://user:pass@host:port/vhost URL", error);
        Assert.DoesNotContain("s3cret", error);
    }
}
