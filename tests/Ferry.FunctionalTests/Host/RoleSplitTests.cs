using System.Net;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Ferry.Host;
using Ferry.Host.Roles;
using Ferry.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.FunctionalTests.Host;

/// <summary>
/// The roles composed apart: api, conductor, scheduler and two compute agents, each its own generic host, meeting
/// only through one in-process bus, one SQLite file and the placement API over HTTP, as separate processes would.
/// </summary>
[Collection(ProcessRestartCollection.Name)]
public sealed class RoleSplitTests
{
    /// <summary>With keystone auth, each compute role logs in to the identity API for its placement token, as a separate process must.</summary>
    [Theory]
    [InlineData("noauth2")]
    [InlineData("keystone")]
    public async Task SeparateRoleHosts_BootAndLiveMigrate_ServerMovesToTheOtherHost(string auth)
    {
        var dataDirectory = TestTempNames.Directory("roles");
        var options = new FerryHostOptions
        {
            DataDirectory = dataDirectory,
            ComputeApiPort = 0,
            PlacementPort = 0,
            IdentityPort = 0,
            ImagePort = 0,
            NetworkPort = 0,
            VolumePort = 0,
            FakeTimeScale = 0,
            ReportInterval = TimeSpan.FromSeconds(1),
            Auth = auth,
        };
        var infrastructure = new FerryInfrastructure(options);
        static void Quiet(ILoggingBuilder logging) => logging.SetMinimumLevel(LogLevel.None);
        var api = RoleHosts.BuildApi(options, infrastructure, Quiet); // binds its ports: the other roles see them in the options
        var conductor = RoleHosts.BuildConductor(options, infrastructure, Quiet);
        var scheduler = RoleHosts.BuildScheduler(options, infrastructure, Quiet);
        var computes = new[] { "compute1", "compute2" }.Select(host =>
        {
            var computeOptions = WithHost(options, host);
            return RoleHosts.BuildCompute(computeOptions, infrastructure, Quiet);
        }).ToList();
        IHost[] all = [api, conductor, scheduler, .. computes];
        try
        {
            foreach (var host in all)
            {
                await host.StartAsync();
            }
            var token = auth == "keystone"
                ? await new Ferry.Core.Identity.KeystoneSession(new HttpClient(), Ferry.Host.Roles.ComputeAgentService.ServiceCredentials(options), TimeProvider.System)
                    .GetTokenAsync(CancellationToken.None)
                : "admin:admin";
            using var admin = new NovaClient(options.ComputeApiUrl, token);
            var (servicesStatus, services) = await admin.GetAsync("os-services");
            Assert.Equal(HttpStatusCode.OK, servicesStatus);
            var binaries = services!["services"]!.AsArray().Select(s => $"{s!["binary"]}@{s["host"]}").ToList();
            Assert.Contains($"nova-conductor@{options.ControllerHost}", binaries);
            Assert.Contains($"nova-scheduler@{options.ControllerHost}", binaries);
            Assert.Contains("nova-compute@compute1", binaries);
            Assert.Contains("nova-compute@compute2", binaries);

            var (bootStatus, boot) = await admin.PostAsync("servers", new JsonObject
            {
                ["server"] = new JsonObject
                {
                    ["name"] = "split", ["imageRef"] = "ferry-test-guest", ["flavorRef"] = "m1.tiny", ["networks"] = "none",
                    ["availability_zone"] = "nova:compute1",
                },
            });
            Assert.True(bootStatus == HttpStatusCode.Accepted, $"boot: {(int)bootStatus} {boot?.ToJsonString()}");
            var id = boot!["server"]!["id"]!.GetValue<string>();
            var instances = api.Services.GetRequiredService<InstanceStore>();
            await WaitForAsync(instances, id, i => i.VmState == VmState.Active && i.TaskState is null, "ACTIVE on compute1");

            var (moveStatus, move) = await admin.ActionAsync(id, new JsonObject
            {
                ["os-migrateLive"] = new JsonObject { ["host"] = "compute2", ["block_migration"] = "auto" },
            });
            Assert.True(moveStatus == HttpStatusCode.Accepted, $"live migration: {(int)moveStatus} {move?.ToJsonString()}");
            var moved = await WaitForAsync(instances, id, i => i.Host == "compute2" && i.TaskState is null, "ACTIVE on compute2");

            Assert.Equal(VmState.Active, moved.VmState);
            var migrations = api.Services.GetRequiredService<MigrationStore>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            Migration migration;
            while ((migration = Assert.Single(migrations.List(new MigrationFilter(InstanceUuid: id)))).Status != MigrationStatus.Completed)
            {
                Assert.True(DateTime.UtcNow < deadline, $"migration {migration.Uuid} is {migration.Status}");
                await Task.Delay(20);
            }
            Assert.Equal((MigrationStatus.Completed, "compute1", "compute2"), (migration.Status, migration.SourceCompute, migration.DestCompute));
            Assert.Equal("compute2", (await admin.GetServerAsync(id))["OS-EXT-SRV-ATTR:host"]!.GetValue<string>());
        }
        finally
        {
            foreach (var host in all.Reverse())
            {
                await host.StopAsync();
                host.Dispose();
            }
            await infrastructure.DisposeAsync();
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task ConductorAlone_StartsReportsAndStops_ItsServiceRowIsUp()
    {
        var dataDirectory = TestTempNames.Directory("conductor");
        var options = new FerryHostOptions { DataDirectory = dataDirectory, ControllerHost = "ctl1" };
        try
        {
            await using var infrastructure = new FerryInfrastructure(options);
            using var conductor = RoleHosts.BuildConductor(options, infrastructure, logging => logging.SetMinimumLevel(LogLevel.None));
            using var scheduler = RoleHosts.BuildScheduler(options, infrastructure, logging => logging.SetMinimumLevel(LogLevel.None));
            await conductor.StartAsync();
            await scheduler.StartAsync();

            var services = conductor.Services.GetRequiredService<ServiceStore>();
            Assert.Contains(services.List(), s => s.Binary == "nova-conductor" && s.Host == "ctl1");
            Assert.Contains(services.List(), s => s.Binary == "nova-scheduler" && s.Host == "ctl1");

            await scheduler.StopAsync();
            await conductor.StopAsync();
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    private static FerryHostOptions WithHost(FerryHostOptions options, string host) => new()
    {
        DataDirectory = options.DataDirectory,
        Auth = options.Auth,
        ListenAddress = options.ListenAddress,
        ComputeApiPort = options.ComputeApiPort,
        PlacementPort = options.PlacementPort,
        IdentityPort = options.IdentityPort,
        ImagePort = options.ImagePort,
        NetworkPort = options.NetworkPort,
        VolumePort = options.VolumePort,
        FakeTimeScale = options.FakeTimeScale,
        ReportInterval = options.ReportInterval,
        ComputeHost = host,
    };

    private static async Task<Instance> WaitForAsync(InstanceStore instances, string id, Func<Instance, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var instance = instances.Find(id, includeDeleted: true) ?? throw new InvalidOperationException($"no instance {id}");
            if (condition(instance))
            {
                return instance;
            }
            Assert.True(DateTime.UtcNow < deadline, $"waiting for {what}: instance {id} is {instance.VmState}/{instance.TaskState} on {instance.Host}");
            await Task.Delay(20);
        }
    }
}
