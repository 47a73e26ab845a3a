using Ferry.ControlPlane.Identity;
using Microsoft.Extensions.Hosting;

namespace Ferry.Host.Roles;

/// <summary>The compute role: one agent (<c>--host NAME</c>), started with the host and stopped with it.</summary>
internal sealed class ComputeAgentService(ComputeAgents agents, FerryHostOptions options, KeystoneTokenHandler? keystone) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Placement wants a token like any service's: a Keystone login with the service credentials (renewed when
        // placement refuses it), or noauth2's admin:admin. The first login happens here: bad credentials stop the start.
        if (keystone is null)
        {
            agents.UsePlacementToken("admin:admin");
        }
        else
        {
            await keystone.EnsureTokenAsync(cancellationToken);
        }
        await agents.StartAsync(options.ComputeHost ?? throw new FerryStartException("compute:host: the compute role needs a host name"), cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await agents.DisposeAsync();

    /// <summary>The Keystone login of a separate agent (keystone auth), or null (noauth2).</summary>
    public static KeystoneTokenHandler? KeystoneLogin(FerryHostOptions options) => options.UsesKeystone
        ? new KeystoneTokenHandler(ct => ServiceToken.LoginAsync(options.IdentityUrl, options.ServiceUser,
            options.ServicePassword ?? new IdentityOptions { ConfigPath = "" }.AdminPassword, options.ServiceProject, ct))
        {
            InnerHandler = new HttpClientHandler(),
        }
        : null;
}
