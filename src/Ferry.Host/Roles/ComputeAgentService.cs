using Ferry.ControlPlane.Identity;
using Ferry.Core.Identity;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The compute role: one agent per host of <c>--host</c> (one, or several with the fake driver), started with the host and stopped with it.</summary>
internal sealed class ComputeAgentService(ComputeAgents agents, FerryHostOptions options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Placement and images want a token like any service's: a Keystone login with the service credentials (renewed
        // before it expires and when refused), or noauth2's admin:admin. The first login happens here: bad credentials stop the start.
        if (options.UsesKeystone)
        {
            await agents.LogInAsync(ServiceCredentials(options), cancellationToken);
        }
        var hosts = options.ComputeHosts;
        if (hosts.Count == 0)
        {
            throw new FerryStartException("compute:host: the compute role needs a host name");
        }
        // Several hosts (fake driver) share this process's bus connection, HTTP client and token; each keeps its own queue,
        // service row, provider and periodic tasks.
        await agents.StartAllAsync(hosts, cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await agents.DisposeAsync();

    /// <summary>Nova's [placement] credentials of a separate agent: the service user, its password and project.</summary>
    public static KeystoneCredentials ServiceCredentials(FerryHostOptions options) => new()
    {
        AuthUrl = new Uri(options.IdentityUrl + "/v3"),
        Username = options.ServiceUser,
        Password = options.ServicePassword ?? new IdentityOptions { ConfigPath = "" }.AdminPassword,
        ProjectName = options.ServiceProject,
    };
}
