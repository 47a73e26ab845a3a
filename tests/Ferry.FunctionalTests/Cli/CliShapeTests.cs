namespace Ferry.FunctionalTests.Cli;

/// <summary>The CLI suite ran against the shape its pass asks for: the all-in-one, or `ferry distributed`'s separate processes.</summary>
public sealed class CliShapeTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    [Fact]
    public async Task Fixture_Services_AreTheShapeTheRunAsksFor()
    {
        fixture.RequireOpenStack();
        var services = (await fixture.AdminJsonAsync("2.latest", "compute", "service", "list")).AsArray();
        var hostsOf = services.GroupBy(s => (string?)s!["Binary"]).ToDictionary(g => g.Key!, g => g.Select(s => (string?)s!["Host"]).Distinct().Count());

        Assert.All(services, s => Assert.Equal("up", (string?)s!["State"]));
        Assert.Equal(3, hostsOf["nova-compute"]);
        // Two replicas of each control-plane role in the distributed shape, each its own service row; one of each in the all-in-one.
        var replicas = CliFixture.DistributedShape ? 2 : 1;
        Assert.Equal(replicas, hostsOf["nova-conductor"]);
        Assert.Equal(replicas, hostsOf["nova-scheduler"]);
        Assert.Equal(CliFixture.DistributedShape, fixture.Distributed is not null);
    }
}
