using System.Text.Json.Nodes;
using Ferry.Core.Domain;
using Ferry.Core.Errors;
using Ferry.Core.Networking;

namespace Ferry.Compute;

/// <summary>
/// A server's ports, as the compute agent drives them through the network service (Nova's neutron API module): made and
/// bound to this host at build, their bindings moved with the server on every move, released at delete.
/// </summary>
public sealed class InstanceNetworks(ComputeContext context)
{
    /// <summary>Nova's device_owner for a server's ports: <c>compute:</c> and the server's availability zone.</summary>
    private static string DeviceOwner(Instance instance) => $"compute:{instance.AvailabilityZone}";

    /// <summary>
    /// Makes (or takes, for a port the user gave) a port for each requested network, bound to this host, and returns the
    /// server's VIFs. A failure releases what was made so far before it propagates.
    /// </summary>
    public async Task<List<Vif>> AllocateAsync(Instance instance, CancellationToken ct)
    {
        if (instance.RequestedNetworks.Count == 0)
        {
            return [];
        }
        var network = context.Network ?? throw new FerryException("This compute host has no network service configured (network_url) to make the server's ports.", 500);
        var vifs = new List<Vif>();
        try
        {
            foreach (var request in instance.RequestedNetworks)
            {
                PortWithBindings port;
                if (request.PortId is { } portId)
                {
                    port = await network.UpdatePortAsync(portId, new JsonObject
                    {
                        ["device_id"] = instance.Uuid,
                        ["device_owner"] = DeviceOwner(instance),
                        ["binding:host_id"] = context.Host,
                    }, ct);
                    vifs.Add(await VifAsync(port, preserveOnDelete: true, ct));
                    continue;
                }
                var body = new JsonObject
                {
                    ["network_id"] = request.NetworkId,
                    ["project_id"] = instance.ProjectId,
                    ["device_id"] = instance.Uuid,
                    ["device_owner"] = DeviceOwner(instance),
                    ["binding:host_id"] = context.Host,
                };
                if (request.FixedIp is { } ip)
                {
                    body["fixed_ips"] = new JsonArray(new JsonObject { ["ip_address"] = ip });
                }
                port = await network.CreatePortAsync(body, ct);
                vifs.Add(await VifAsync(port, preserveOnDelete: false, ct));
            }
            return vifs;
        }
        catch (Exception) when (vifs.Count > 0)
        {
            await ReleaseAsync(instance, vifs, CancellationToken.None);
            throw;
        }
    }

    /// <summary>
    /// Deletes the ports made for the server and unbinds the ones its user gave (Nova's deallocate_for_instance). The ports
    /// are looked up by device too, as Nova does: a build that died between making them and saving them left them only there.
    /// </summary>
    public async Task DeallocateAsync(Instance instance, CancellationToken ct)
    {
        if (context.Network is null && instance.NetworkInfo.Count == 0 && instance.RequestedNetworks.Count == 0)
        {
            return;
        }
        var given = instance.RequestedNetworks.Where(r => r.PortId is not null).Select(r => r.PortId!).ToHashSet();
        var known = instance.NetworkInfo.Select(v => v.Id).ToHashSet();
        var owned = (await Client.ListPortsOfDeviceAsync(instance.Uuid, ct)).Where(p => !known.Contains(p.Port.Id))
            .Select(p => new Vif { Id = p.Port.Id, MacAddress = p.Port.MacAddress, NetworkId = p.Port.NetworkId, NetworkLabel = "", PreserveOnDelete = given.Contains(p.Port.Id) });
        await ReleaseAsync(instance, [.. instance.NetworkInfo, .. owned], ct);
    }

    /// <summary>Binds every port of the server to <paramref name="host"/> at once (cold migration, resize, revert, evacuation).</summary>
    public async Task BindToHostAsync(Instance instance, string host, CancellationToken ct)
    {
        foreach (var vif in instance.NetworkInfo)
        {
            await Client.UpdatePortAsync(vif.Id, new JsonObject { ["binding:host_id"] = host }, ct);
        }
    }

    /// <summary>Adds an inactive binding of every port for a live migration's destination (Nova's bind_ports_to_host).</summary>
    public async Task BindInactiveAsync(Instance instance, string destHost, CancellationToken ct)
    {
        foreach (var vif in instance.NetworkInfo)
        {
            try
            {
                await Client.CreateBindingAsync(vif.Id, destHost, ct);
            }
            catch (NeutronException ex) when (ex.Type == "PortBindingAlreadyExists")
            {
                // Left by an earlier attempt at this destination that died before it cleaned up: it is the binding wanted.
            }
        }
    }

    /// <summary>Switch-over: the destination's bindings become the active ones (Nova's migrate_instance_start).</summary>
    public async Task ActivateAsync(Instance instance, string destHost, CancellationToken ct)
    {
        foreach (var vif in instance.NetworkInfo)
        {
            await Client.ActivateBindingAsync(vif.Id, destHost, ct);
        }
    }

    /// <summary>Deletes every port's binding for <paramref name="host"/> (the source's after switch-over, the destination's on rollback).</summary>
    public async Task DeleteBindingsAsync(Instance instance, string host, CancellationToken ct)
    {
        foreach (var vif in instance.NetworkInfo)
        {
            await Client.DeleteBindingAsync(vif.Id, host, ct);
        }
    }

    /// <summary>
    /// Leaves every port of the server bound to <paramref name="host"/> alone: its binding there made active (activated
    /// when a migration had left one, else set), every other binding deleted. Idempotent; start-up recovery runs it for
    /// the servers whose move it finished or rolled back, wherever the move was cut.
    /// </summary>
    public async Task SettleOnHostAsync(Instance instance, string host, CancellationToken ct)
    {
        foreach (var vif in instance.NetworkInfo)
        {
            List<PortBinding> bindings;
            try
            {
                bindings = await Client.ListBindingsAsync(vif.Id, ct);
            }
            catch (NeutronException ex) when (ex.HttpStatus == 404)
            {
                continue; // the port is gone: nothing to settle
            }
            if (bindings.FirstOrDefault(b => b.Host == host) is { } here)
            {
                if (here.Status != PortBindingStatus.Active)
                {
                    await Client.ActivateBindingAsync(vif.Id, host, ct);
                }
            }
            else
            {
                await Client.UpdatePortAsync(vif.Id, new JsonObject { ["binding:host_id"] = host }, ct);
            }
            foreach (var other in bindings.Where(b => b.Host != host))
            {
                await Client.DeleteBindingAsync(vif.Id, other.Host, ct);
            }
        }
    }

    private NetworkHttpClient Client => context.Network
        ?? throw new FerryException("This compute host has no network service configured (network_url) to move the server's ports.", 500);

    private async Task ReleaseAsync(Instance instance, IReadOnlyList<Vif> vifs, CancellationToken ct)
    {
        foreach (var vif in vifs)
        {
            await context.TryAsync(vif.PreserveOnDelete ? "unbind port" : "delete port", instance.Uuid, async () =>
            {
                if (vif.PreserveOnDelete)
                {
                    try
                    {
                        await Client.UpdatePortAsync(vif.Id, new JsonObject { ["device_id"] = "", ["device_owner"] = "", ["binding:host_id"] = "" }, ct);
                    }
                    catch (NeutronException ex) when (ex.HttpStatus == 404)
                    {
                    }
                }
                else
                {
                    await Client.DeletePortAsync(vif.Id, ct);
                }
            });
        }
    }

    /// <summary>The server's view of a port: its MAC, network name and fixed IPs with their subnets.</summary>
    private async Task<Vif> VifAsync(PortWithBindings port, bool preserveOnDelete, CancellationToken ct)
    {
        var network = await Client.GetNetworkAsync(port.Port.NetworkId, ct);
        var subnets = (await Client.ListSubnetsAsync(port.Port.NetworkId, ct)).ToDictionary(s => s.Id);
        return new Vif
        {
            Id = port.Port.Id,
            MacAddress = port.Port.MacAddress,
            NetworkId = network.Id,
            NetworkLabel = network.Name,
            Mtu = network.Mtu,
            VifType = port.ActiveBinding?.VifType ?? VifTypes.Bridge,
            PreserveOnDelete = preserveOnDelete,
            Ips = [.. port.Port.FixedIps.Select(ip => subnets.TryGetValue(ip.SubnetId, out var s)
                ? new VifIp(ip.IpAddress, s.Id, s.Cidr, s.GatewayIp, s.EnableDhcp, s.DnsNameservers)
                : new VifIp(ip.IpAddress, ip.SubnetId, "", null))],
        };
    }
}
