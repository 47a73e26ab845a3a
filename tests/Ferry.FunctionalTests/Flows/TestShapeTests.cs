using Ferry.ControlPlane.Persistence;
using Ferry.Core.Rpc;
using Ferry.Host.Messaging;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>
/// The flow suite runs twice in `./ferry test`: embedded (SQLite, in-process bus) and again with
/// <c>FERRY_TEST_SHAPE=postgresql-rabbitmq</c>. This says which one ran, so the second pass cannot quietly be the first.
/// </summary>
public sealed class TestShapeTests(FerryFixture fixture) : IClassFixture<FerryFixture>
{
    [Fact]
    public void Fixture_DatabaseAndBus_AreTheShapeTheRunAsksFor()
    {
        var distributed = Environment.GetEnvironmentVariable("FERRY_TEST_SHAPE") == "postgresql-rabbitmq";
        var services = fixture.Ferry.Services;

        Assert.Equal(distributed, services.GetRequiredService<FerryDatabase>().IsShared);
        Assert.Equal(distributed, services.GetRequiredService<IRpcTransport>() is RabbitMqTransport);
    }
}
