using System.Diagnostics;
using Ferry.Host.Configuration;
using Ferry.Host.Roles;

namespace Ferry.Host.Distributed;

/// <summary>`ferry distributed` (`./ferry up --distributed`): the launcher in the foreground until Ctrl-C or SIGTERM.</summary>
internal static class DistributedCommand
{
    /// <param name="givenSettings">The settings given on the command line (key → value), handed to every role as FERRY_ variables.</param>
    public static async Task<int> RunAsync(FerryHostOptions options, IReadOnlyDictionary<string, string> givenSettings, string? configFile,
        Stopwatch started, CancellationToken stopping)
    {
        var environment = new Dictionary<string, string>();
        foreach (var (key, value) in givenSettings)
        {
            if (FerrySettings.Find(key) is { } setting && (setting.Roles & ~FerryRoles.Distributed) != 0)
            {
                environment[setting.EnvironmentVariable] = value;
            }
        }
        if (configFile is not null)
        {
            environment[FerryConfiguration.ConfigVariable] = Path.GetFullPath(configFile);
        }
        // The api processes do not know the agents' driver: the volume backend is decided here, for QEMU hosts NBD.
        environment[FerrySettings.Find("volume:backend")!.EnvironmentVariable] = VolumeBackends.Resolve(options);
        var plan = new DistributedPlan(Path.GetFullPath(options.DataDirectory), options.Hosts, options.Replicas, options.PostgresPort, options.RabbitMqPort,
            options.ComputeApiPort, options.PlacementPort, options.IdentityPort, options.ImagePort, options.NetworkPort, options.VolumePort, options.UsesKeystone, environment, options.MetricsPort)
        {
            // Given a database or a broker, the launcher uses the operator's own instead of starting one.
            Database = options.Database,
            HostsPerCompute = options.HostsPerCompute,
            Transport = options.UsesInProcessTransport ? null : options.Transport,
            KillGuestsOnStop = options.KillGuestsOnStop,
            Lab = options.Netns
                ? new LabPlan(options.LinkBandwidthMbit > 0 ? options.LinkBandwidthMbit : null, options.LinkLatencyMs > 0 ? options.LinkLatencyMs : null)
                : null,
        };
        await using var launcher = await DistributedLauncher.StartAsync(plan, Console.Out, stopping);
        var dataDirectory = plan.DataDirectory;
        Console.WriteLine($"Ferry (distributed) is ready in {started.ElapsedMilliseconds} ms: compute API {launcher.ComputeApiUrl}, placement {launcher.PlacementUrl}, " +
            (options.UsesKeystone ? $"identity {launcher.IdentityUrl}, " : "") + $"images {launcher.ImageUrl}, network {launcher.NetworkUrl}, volumes {launcher.VolumeUrl}/v3; {launcher.DatabaseDisplay}, " +
            $"{launcher.BrokerDisplay}; {options.Replicas} api, {options.Replicas} conductor, {options.Replicas} scheduler and " +
            $"{(plan.Lab is null ? plan.ComputeProcesses().Count : options.Hosts)} compute processes for {options.Hosts} hosts (logs in {Path.Combine(dataDirectory, "log")}). Ctrl-C stops them all.");
        if (launcher.Lab is { } lab)
        {
            Console.WriteLine($"Lab: bridge {lab.RootBridge} (controller {lab.ControllerAddress}/{NetnsLab.PrefixLength}, guests' gateway {Seed.PrivateGateway}); " +
                string.Join(", ", Enumerable.Range(1, options.Hosts).Select(h => $"compute{h} in namespace {lab.Namespace(h)} at {lab.HostAddress(h)}")) +
                (plan.Lab!.LinkBandwidthMbit is { } bw ? $"; links {bw} Mbit/s" : "") + (plan.Lab.LinkLatencyMs is { } ms ? $", {ms} ms each way" : "") + ".");
        }
        if (launcher.MetricsUrls() is { Count: > 0 } metrics)
        {
            Console.WriteLine($"Metrics (besides every API port's /metrics): {string.Join(", ", metrics.Select(m => $"{m.Name} {m.Url}"))}");
        }
        if (options.UsesKeystone)
        {
            Console.WriteLine($"Try: . {Path.Combine(dataDirectory, "admin-openrc.sh")} && openstack compute service list");
        }
        try
        {
            await Task.Delay(Timeout.Infinite, stopping);
        }
        catch (OperationCanceledException)
        {
        }
        Console.WriteLine("Ferry (distributed) is stopping: compute agents, then the control plane, then the RabbitMQ and PostgreSQL it started.");
        return 0;
    }
}
