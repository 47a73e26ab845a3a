using Ferry.Core.Domain;

namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class ServicesEndpointsTests(ComputeApiFixture f)
{
    [Fact]
    public async Task List_ComputesStateFromHeartbeatAndForcedDown()
    {
        var up = f.AddHost();
        var down = f.AddHost(up: false);
        var r = await f.SendAsync(HttpMethod.Get, "v2.1/os-services?binary=nova-compute");
        var services = r.Json!["services"]!.AsArray();
        var upView = services.Single(s => s!["host"]!.GetValue<string>() == up)!;
        Assert.Equal("up", upView["state"]!.GetValue<string>());
        Assert.Equal("enabled", upView["status"]!.GetValue<string>());
        Assert.Equal(f.Services.Find(up, "nova-compute")!.Uuid, upView["id"]!.GetValue<string>());
        var downView = services.Single(s => s!["host"]!.GetValue<string>() == down)!;
        Assert.Equal("down", downView["state"]!.GetValue<string>());
        Assert.True(downView["forced_down"]!.GetValue<bool>());
        var legacy = await f.SendAsync(HttpMethod.Get, $"v2.1/os-services?host={up}", version: "2.52");
        Assert.Equal(f.Services.Find(up, "nova-compute")!.Id, legacy.Json!["services"]![0]!["id"]!.GetValue<int>());
    }

    [Fact]
    public async Task Update_DisableAndForceDown_UpdatesStore()
    {
        var host = f.AddHost();
        var service = f.Services.Find(host, "nova-compute")!;
        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{service.Uuid}", """{"status": "disabled", "disabled_reason": "maintenance"}""");
        Assert.Equal(200, r.Status);
        Assert.Equal("disabled", r.Json!["service"]!["status"]!.GetValue<string>());
        Assert.True(f.Services.FindByUuid(service.Uuid)!.Disabled);
        Assert.Equal("maintenance", f.Services.FindByUuid(service.Uuid)!.DisabledReason);

        var down = await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{service.Uuid}", """{"forced_down": true}""");
        Assert.Equal("down", down.Json!["service"]!["state"]!.GetValue<string>());
        var enable = await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{service.Uuid}", """{"status": "enabled", "forced_down": false}""");
        Assert.Equal(200, enable.Status);
        Assert.False(f.Services.FindByUuid(service.Uuid)!.Disabled);
        Assert.Null(f.Services.FindByUuid(service.Uuid)!.DisabledReason);
    }

    [Theory]
    [InlineData("""{"status": "enabled", "disabled_reason": "x"}""", "Specifying 'disabled_reason' with status 'enabled' is invalid.")]
    [InlineData("""{}""", "No updates were requested. Fields 'status' or 'forced_down' should be specified.")]
    [InlineData("""{"disabled_reason": "x"}""", "No updates were requested. Fields 'status' or 'forced_down' should be specified.")]
    [InlineData("""{"status": "sleeping"}""", null)]
    [InlineData("""{"forced_down": "maybe"}""", null)]
    [InlineData("""{"host": "x"}""", null)]
    public async Task Update_InvalidBody_Returns400AndChangesNothing(string body, string? message)
    {
        var host = f.AddHost();
        var service = f.Services.Find(host, "nova-compute")!;
        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{service.Uuid}", body);
        Assert.Equal(400, r.Status);
        if (message is not null)
        {
            Assert.Equal(message, r.FaultMessage);
        }
        Assert.Equal(service with { UpdatedAt = default }, f.Services.FindByUuid(service.Uuid)! with { UpdatedAt = default });
    }

    [Fact]
    public async Task Update_UnforceWithDoneEvacuations_Returns400()
    {
        var host = f.AddHost(up: false);
        var vm = f.AddInstance(host);
        f.AddMigration(vm, MigrationType.Evacuation, MigrationStatus.Done, f.AddHost());
        var service = f.Services.Find(host, "nova-compute")!;
        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{service.Uuid}", """{"forced_down": false}""");
        Assert.Equal(400, r.Status);
        Assert.StartsWith($"Unable to force up host {host} as `done` evacuation migration records remain", r.FaultMessage, StringComparison.Ordinal);
        Assert.True(f.Services.FindByUuid(service.Uuid)!.ForcedDown);
    }

    [Fact]
    public async Task Update_NonComputeOrUnknown_Returns400Or404()
    {
        var conductor = f.Services.Report("ctl", "nova-conductor", "conductor", 1);
        var r = await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{conductor.Uuid}", """{"status": "disabled"}""");
        Assert.Equal(400, r.Status);
        Assert.Equal("Updating a nova-conductor service is not supported. Only nova-compute services can be updated.", r.FaultMessage);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Put, $"v2.1/os-services/{Guid.NewGuid()}", """{"status": "disabled"}""")).Status);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Put, "v2.1/os-services/not-a-uuid", """{"status": "disabled"}""")).Status);
    }

    [Fact]
    public async Task UpdateLegacy_DisableLogReasonAndForceDown_Work()
    {
        var host = f.AddHost();
        var r = await f.SendAsync(HttpMethod.Put, "v2.1/os-services/disable-log-reason",
            $$$"""{"host": "{{{host}}}", "binary": "nova-compute", "disabled_reason": "test"}""", version: "2.52");
        Assert.Equal(200, r.Status);
        Assert.Equal("disabled", r.Json!["service"]!["status"]!.GetValue<string>());
        Assert.Equal("test", r.Json["service"]!["disabled_reason"]!.GetValue<string>());
        var down = await f.SendAsync(HttpMethod.Put, "v2.1/os-services/force-down",
            $$$"""{"host": "{{{host}}}", "binary": "nova-compute", "forced_down": true}""", version: "2.11");
        Assert.True(down.Json!["service"]!["forced_down"]!.GetValue<bool>());
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Put, "v2.1/os-services/force-down",
            $$$"""{"host": "{{{host}}}", "binary": "nova-compute", "forced_down": true}""", version: "2.10")).Status);
        Assert.Equal(400, (await f.SendAsync(HttpMethod.Put, "v2.1/os-services/disable-log-reason",
            $$$"""{"host": "{{{host}}}", "binary": "nova-compute"}""", version: "2.52")).Status);
    }
}
