using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Flows;

/// <summary>Boot-time placement policies (server groups, hints) still hold when a server moves.</summary>
public sealed class PlacementPolicyTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task LiveMigrate_AntiAffinityGroup_AvoidsHostOfOtherMember()
    {
        var (status, body) = await Admin.PostAsync("os-server-groups", JsonNode.Parse("""{"server_group": {"name": "spread", "policy": "anti-affinity"}}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        var group = body!["server_group"]!["id"]!.GetValue<string>();
        var hints = () => new JsonObject { ["group"] = group };
        var a = await BootAsync("compute1", schedulerHints: hints(), name: "a");
        await BootAsync("compute2", flavor: "m1.nano", schedulerHints: hints(), name: "b");
        // compute3 carries a big server outside the group: by free memory alone compute2 would win.
        await BootAsync("compute3", flavor: "m1.medium", name: "big");

        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(a));
        var (instance, migration) = await WaitForMoveEndAsync(a);

        Assert.Equal((MigrationStatus.Completed, "compute3"), (migration.Status, instance.Host));
    }

    [Fact]
    public async Task Migrate_SameHostHintFromBoot_StillHonouredSoNoValidHost()
    {
        var anchor = await BootAsync("compute2", name: "anchor");
        var follower = await BootAsync(schedulerHints: new JsonObject { ["same_host"] = new JsonArray(anchor) }, name: "follower");
        Assert.Equal("compute2", Instances.Get(follower).Host);

        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(follower, JsonNode.Parse("""{"migrate": null}""")!)).Status);
        var (instance, migration) = await WaitForMoveEndAsync(follower);

        Assert.Equal((MigrationStatus.Error, "compute2"), (migration.Status, instance.Host));
        Assert.Contains("No valid host", LastFault(follower));
    }

    [Fact]
    public async Task Delete_ResizedServer_ConfirmsFirstSoNothingLeaks()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, (await Admin.ActionAsync(id, JsonNode.Parse("""{"migrate": {"host": "compute2"}}""")!)).Status);
        var (_, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal(MigrationStatus.Finished, migration.Status);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
        await WaitForMigrationAsync(id, m => m.Status == MigrationStatus.Confirmed, "confirmed");

        Assert.Null(Driver("compute1").GetGuest(id));
        Assert.Null(Driver("compute2").GetGuest(id));
    }
}
