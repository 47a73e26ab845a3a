using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Virt.Fake;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>An instance action's events as Nova shows them per role: traceback (admin) and details (admin, 2.84).</summary>
public sealed class InstanceActionEventTests(FerryFixture fixture) : FlowTest<FerryFixture>(fixture)
{
    [Fact]
    public async Task FailedStop_AdminSeesFaultDetailsAsTraceback_OwnerSeesNeitherTracebackNorDetails()
    {
        var (created, body) = await Fixture.Demo.PostAsync("servers", JsonNode.Parse("""
            {"server": {"name": "events", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none", "availability_zone": "nova"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, created);
        var id = body!["server"]!["id"]!.GetValue<string>();
        var booted = await WaitForAsync(id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE");
        Driver(booted.Host!).Faults.FailNext(FakeSteps.PowerOff);

        Assert.Equal(HttpStatusCode.Accepted, (await Fixture.Demo.ActionAsync(id, JsonNode.Parse("""{"os-stop": null}""")!)).Status);
        await WaitForAsync(id, i => i.TaskState is null && Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(i.Uuid) is not null, "the stop's fault");
        var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id)!;
        var requestId = (string)(await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]!.AsArray()
            .Single(a => (string?)a!["action"] == "stop")!["request_id"]!;

        var admin = await EventAsync(Admin, id, requestId, "2.84");
        Assert.Equal("Error", (string?)admin["result"]);
        Assert.Equal(fault.Message, (string?)admin["details"]);
        var traceback = (string?)admin["traceback"];
        Assert.Equal(fault.Details, traceback);
        Assert.Contains(fault.Message, traceback);
        Assert.DoesNotContain("   at ", traceback, StringComparison.Ordinal);
        Assert.Equal(booted.Host, (string?)admin["host"]);

        // Before 2.84 an admin has the traceback but no details; before 2.62 no host either.
        var admin21 = await EventAsync(Admin, id, requestId, "2.1");
        Assert.Equal(["event", "start_time", "finish_time", "result", "traceback"], admin21.Select(p => p.Key));
        Assert.Equal(traceback, (string?)admin21["traceback"]);

        // The owner sees events from 2.51, a hostId from 2.62, and never the traceback, host or details.
        var owner = await EventAsync(Fixture.Demo, id, requestId, "2.84");
        Assert.Equal(["event", "start_time", "finish_time", "result", "hostId"], owner.Select(p => p.Key));
        var (status, old) = await Fixture.Demo.GetAsync($"servers/{id}/os-instance-actions/{requestId}", "2.50");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(old!["instanceAction"]!.AsObject().ContainsKey("events"));

        Assert.Equal(HttpStatusCode.NoContent, (await Fixture.Demo.SendAsync(HttpMethod.Delete, $"servers/{id}")).Status);
        await WaitForAsync(id, i => i.VmState == VmState.Deleted, "deleted");
    }

    [Fact]
    public async Task SucceededEvent_AdminTracebackIsNull()
    {
        var id = await BootAsync("compute2");
        var requestId = (string)(await Admin.GetAsync($"servers/{id}/os-instance-actions")).Body!["instanceActions"]![0]!["request_id"]!;

        var ev = await EventAsync(Admin, id, requestId, "2.84");

        Assert.Equal("Success", (string?)ev["result"]);
        Assert.True(ev.ContainsKey("traceback") && ev["traceback"] is null);
        Assert.True(ev.ContainsKey("details") && ev["details"] is null);
    }

    private static async Task<JsonObject> EventAsync(NovaClient client, string id, string requestId, string microversion)
    {
        var (status, body) = await client.GetAsync($"servers/{id}/os-instance-actions/{requestId}", microversion);
        Assert.True(status == HttpStatusCode.OK, $"{(int)status} {body?.ToJsonString()}");
        var events = body!["instanceAction"]!["events"]!.AsArray();
        return events.Last(e => e!["finish_time"] is not null)!.AsObject();
    }
}
