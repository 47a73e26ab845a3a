using Ferry.ControlPlane.Identity;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The compute role: one agent (<c>--host NAME</c>), started with the host and stopped with it.</summary>
internal sealed class ComputeAgentService(ComputeAgents agents, FerryHostOptions options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Placement wants a token like any service's: a Keystone login with the service credentials, or noauth2's admin:admin.
        var token = options.UsesKeystone
            ? await ServiceToken.LoginAsync(options.IdentityUrl, options.ServiceUser, options.ServicePassword ?? new IdentityOptions { ConfigPath = "" }.AdminPassword,
                options.ServiceProject, cancellationToken)
            : "admin:admin";
        agents.UsePlacementToken(token);
        await agents.StartAsync(options.ComputeHost ?? throw new FerryStartException("compute:host: the compute role needs a host name"), cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await agents.DisposeAsync();
}
