using Ferry.Host;

namespace Ferry.Tests.Host;

/// <summary>`./ferry up --transport-url`: which bus the all-in-one runs on.</summary>
public sealed class TransportUrlCommandLineTests
{
    [Fact]
    public void Bind_NoTransportUrl_InProcessBus()
    {
        Assert.Null(FerryCommandLine.Bind(FerryCommandLine.Parse([])).RabbitMq);
        Assert.Null(FerryCommandLine.Bind(FerryCommandLine.Parse(["--transport-url", "none"])).RabbitMq);
    }

    [Fact]
    public void Bind_RabbitMqUrl_RabbitMqBusAtThatUrl()
    {
        var options = FerryCommandLine.Bind(FerryCommandLine.Parse(["--transport-url", "rabbitmq://ferry:s3cret@mq:5673/prod"]));

        Assert.Equal("rabbitmq://ferry:s3cret@mq:5673/prod", options.RabbitMq?.Url);
        Assert.Equal("ferry", options.RabbitMq?.Exchange);
    }

    [Theory]
    [InlineData("http://ferry:s3cret@mq/")]
    [InlineData("mq:5672")]
    public void Parse_NotARabbitMqUrl_OneLineNamingTheFlagWithoutThePassword(string url)
    {
        var errors = FerryCommandLine.Parse(["--transport-url", url]).Errors;

        var error = Assert.Single(errors).Message;
        Assert.StartsWith("Invalid --transport-url '", error);
        Assert.EndsWith("expected rabbitmq://user:pass@host:port/vhost", error);
        Assert.DoesNotContain("s3cret", error);
    }
}
