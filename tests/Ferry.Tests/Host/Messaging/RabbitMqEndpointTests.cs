using Ferry.Host.Messaging;

namespace Ferry.Tests.Host.Messaging;

public sealed class RabbitMqEndpointTests
{
    [Theory]
    [InlineData("rabbitmq://ferry:s3cret@mq.example:5673/prod", "mq.example", 5673, "prod", "ferry", "s3cret")]
    [InlineData("amqp://ferry:s3cret@10.0.0.5/", "10.0.0.5", 5672, "/", "ferry", "s3cret")]
    [InlineData("rabbit://ferry:p%40ss%3Aword@mq:5672/%2F", "mq", 5672, "/", "ferry", "p@ss:word")]
    [InlineData("rabbitmq://127.0.0.1:25672", "127.0.0.1", 25672, "/", "guest", "guest")]
    public void Parse_ValidUrl_FillsEveryField(string url, string host, int port, string vhost, string user, string password)
    {
        var endpoint = RabbitMqEndpoint.Parse(url);

        Assert.Equal(new RabbitMqEndpoint(host, port, vhost, user, password), endpoint);
    }

    [Fact]
    public void Display_UrlWithPassword_LeavesThePasswordOut()
    {
        var endpoint = RabbitMqEndpoint.Parse("rabbitmq://ferry:s3cret@mq:5673/prod");

        Assert.Equal("rabbitmq://ferry@mq:5673/prod", endpoint.Display);
    }

    [Theory]
    [InlineData("http://ferry:s3cret@mq:5672/")]
    [InlineData("mq:5672")]
    [InlineData("")]
    public void Parse_NotARabbitMqUrl_ThrowsNamingTheSettingWithoutThePassword(string url)
    {
        var ex = Assert.Throws<FormatException>(() => RabbitMqEndpoint.Parse(url));

        Assert.Contains(RabbitMqOptions.SettingName, ex.Message);
        Assert.Contains("rabbitmq://user:pass@host:port/vhost", ex.Message);
        Assert.DoesNotContain("s3cret", ex.Message);
    }
}
