using System.Data.Common;
using System.Security.Cryptography;
using Ferry.Core.Networking;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// The network service's state (Neutron's database): networks, subnets, ports, fixed-IP allocations and port bindings.
/// Every write that depends on a network's subnets or ports first locks that network's row, so on PostgreSQL two
/// replicas creating ports on one network take turns and cannot hand out one address twice; the unique keys on
/// (subnet, address) and (network, MAC) hold even so.
/// </summary>
public sealed class NetworkStore(FerryDatabase db)
{
    /// <summary>Neutron's default <c>base_mac</c>: the OpenStack OUI, the last three bytes random.</summary>
    private const string MacPrefix = "fa:16:3e";

    // --- networks ---

    public Task CreateNetworkAsync(Network network, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "INSERT INTO networks(id, project_id, data) VALUES (@i, @p, @d)",
                ("@i", network.Id), ("@p", network.ProjectId), ("@d", Rows.Json(network, PersistenceJsonContext.Default.Network))), ct);
        }, cancellationToken);

    public Task<Network?> GetNetworkAsync(string id, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindNetworkAsync(c, null, id, "", ct), cancellationToken);

    /// <summary>Every network, oldest first (a cloud has few; filters apply to the result).</summary>
    public Task<List<Network>> ListNetworksAsync(CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM networks");
            var networks = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Network), ct);
            return networks.OrderBy(n => n.CreatedAt).ThenBy(n => n.Id, StringComparer.Ordinal).ToList();
        }, cancellationToken);

    /// <summary>Applies <paramref name="change"/> to the network under its row lock; NetworkNotFound when there is none.</summary>
    public Task<Network> UpdateNetworkAsync(string id, Func<Network, Network> change, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var current = await FindNetworkAsync(c, t, id, db.Dialect.ForUpdate, ct) ?? throw NeutronException.NetworkNotFound(id);
            var updated = change(current);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "UPDATE networks SET data = @d WHERE id = @i",
                ("@i", id), ("@d", Rows.Json(updated, PersistenceJsonContext.Default.Network))), ct);
            return updated;
        }, cancellationToken);

    /// <summary>Deletes the network and its subnets; 409 NetworkInUse while any port is on it.</summary>
    public Task DeleteNetworkAsync(string id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            _ = await FindNetworkAsync(c, t, id, db.Dialect.ForUpdate, ct) ?? throw NeutronException.NetworkNotFound(id);
            if (await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT 1 FROM ports WHERE network_id = @n LIMIT 1", ("@n", id)), ct) is not null)
            {
                throw new NeutronException(409, "NetworkInUse",
                    $"Unable to complete operation on network {id}. There are one or more ports still in use on the network.");
            }
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM subnets WHERE network_id = @n", ("@n", id)), ct);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM networks WHERE id = @n", ("@n", id)), ct);
        }, cancellationToken);

    // --- subnets ---

    /// <summary>Adds a subnet to its network; 400 when its CIDR overlaps another subnet of that network (Neutron's check).</summary>
    public Task CreateSubnetAsync(Subnet subnet, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            _ = await FindNetworkAsync(c, t, subnet.NetworkId, db.Dialect.ForUpdate, ct) ?? throw NeutronException.NetworkNotFound(subnet.NetworkId);
            Ipv4Cidr.TryParse(subnet.Cidr, out var cidr);
            foreach (var other in await SubnetsOfAsync(c, t, subnet.NetworkId, ct))
            {
                if (Ipv4Cidr.TryParse(other.Cidr, out var taken) && taken.Value.Overlaps(cidr!.Value))
                {
                    throw new NeutronException(400, "InvalidInput",
                        $"Invalid input for operation: Requested subnet with cidr: {subnet.Cidr} for network: {subnet.NetworkId} overlaps with another subnet.");
                }
            }
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "INSERT INTO subnets(id, network_id, data) VALUES (@i, @n, @d)",
                ("@i", subnet.Id), ("@n", subnet.NetworkId), ("@d", Rows.Json(subnet, PersistenceJsonContext.Default.Subnet))), ct);
        }, cancellationToken);

    public Task<Subnet?> GetSubnetAsync(string id, CancellationToken cancellationToken) =>
        db.ReadAsync((c, ct) => FindSubnetAsync(c, null, id, ct), cancellationToken);

    /// <summary>Every subnet, or a network's, oldest first.</summary>
    public Task<List<Subnet>> ListSubnetsAsync(string? networkId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM subnets WHERE (CAST(@n AS TEXT) IS NULL OR network_id = @n)", ("@n", networkId));
            var subnets = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Subnet), ct);
            return subnets.OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal).ToList();
        }, cancellationToken);

    public Task<Subnet> UpdateSubnetAsync(string id, Func<Subnet, Subnet> change, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var current = await FindSubnetAsync(c, t, id, ct) ?? throw NeutronException.SubnetNotFound(id);
            _ = await FindNetworkAsync(c, t, current.NetworkId, db.Dialect.ForUpdate, ct);
            var updated = change(current);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "UPDATE subnets SET data = @d WHERE id = @i",
                ("@i", id), ("@d", Rows.Json(updated, PersistenceJsonContext.Default.Subnet))), ct);
            return updated;
        }, cancellationToken);

    /// <summary>Deletes a subnet; 409 SubnetInUse while a port holds an address on it.</summary>
    public Task DeleteSubnetAsync(string id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var subnet = await FindSubnetAsync(c, t, id, ct) ?? throw NeutronException.SubnetNotFound(id);
            _ = await FindNetworkAsync(c, t, subnet.NetworkId, db.Dialect.ForUpdate, ct);
            if (await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT 1 FROM ip_allocations WHERE subnet_id = @s LIMIT 1", ("@s", id)), ct) is not null)
            {
                throw new NeutronException(409, "SubnetInUse",
                    $"Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet.");
            }
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM subnets WHERE id = @s", ("@s", id)), ct);
        }, cancellationToken);

    // --- ports ---

    /// <summary>
    /// Adds a port with a new MAC (unless the port names one) and its fixed IPs: each request names a subnet, an
    /// address, or both; none at all takes the first free address of the network's first subnet (Neutron's default).
    /// 409 IpAddressAlreadyAllocated / MacAddressInUse, 400 InvalidIpForSubnet / IpAddressGenerationFailure.
    /// </summary>
    public Task<PortWithBindings> CreatePortAsync(Port port, IReadOnlyList<FixedIpRequest>? fixedIps, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            _ = await FindNetworkAsync(c, t, port.NetworkId, db.Dialect.ForUpdate, ct) ?? throw NeutronException.NetworkNotFound(port.NetworkId);
            var subnets = await SubnetsOfAsync(c, t, port.NetworkId, ct);
            var mac = port.MacAddress.Length > 0 ? port.MacAddress : await FreeMacAsync(c, t, port.NetworkId, ct);
            if (await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT 1 FROM ports WHERE network_id = @n AND mac_address = @m",
                ("@n", port.NetworkId), ("@m", mac)), ct) is not null)
            {
                throw new NeutronException(409, "MacAddressInUse", $"Unable to complete operation for network {port.NetworkId}. The mac address {mac} is in use.");
            }
            var requests = fixedIps ?? (subnets.Count > 0 ? [new FixedIpRequest(subnets[0].Id, null)] : []);
            var ips = new List<FixedIp>();
            foreach (var request in requests)
            {
                ips.Add(await AllocateAsync(c, t, port.Id, port.NetworkId, subnets, request, ips, ct));
            }
            var created = port with { MacAddress = mac, FixedIps = ips };
            try
            {
                await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t,
                    "INSERT INTO ports(id, network_id, project_id, mac_address, device_id, data) VALUES (@i, @n, @p, @m, @dev, @d)",
                    ("@i", created.Id), ("@n", created.NetworkId), ("@p", created.ProjectId), ("@m", mac), ("@dev", created.DeviceId),
                    ("@d", Rows.Json(created, PersistenceJsonContext.Default.Port))), ct);
            }
            catch (DbException e) when (SqlDialect.IsUniqueViolation(e))
            {
                throw new NeutronException(409, "MacAddressInUse", $"Unable to complete operation for network {port.NetworkId}. The mac address {mac} is in use.");
            }
            return new PortWithBindings(created, []);
        }, cancellationToken);

    public Task<PortWithBindings?> GetPortAsync(string id, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) => await FindPortAsync(c, null, id, "", ct) is { } port ? new PortWithBindings(port, await BindingsOfAsync(c, null, [id], ct)) : null,
            cancellationToken);

    /// <summary>Ports in id order, filtered by the indexed columns, after <paramref name="marker"/>, at most <paramref name="limit"/>.</summary>
    public Task<List<PortWithBindings>> ListPortsAsync(PortQuery query, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var where = new List<string>();
            var parameters = new List<(string, object?)>();
            void Filter(string column, IReadOnlyList<string>? values)
            {
                if (values is { Count: > 0 })
                {
                    var names = values.Select((v, i) => { var name = $"@{column}{i}"; parameters.Add((name, v)); return name; });
                    where.Add($"{column} IN ({string.Join(", ", names)})");
                }
            }
            Filter("id", query.Ids);
            Filter("network_id", query.NetworkIds);
            Filter("device_id", query.DeviceIds);
            Filter("project_id", query.ProjectIds);
            if (query.Marker is not null)
            {
                where.Add("id > @marker");
                parameters.Add(("@marker", query.Marker));
            }
            var sql = "SELECT data FROM ports" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY id"
                + (query.Limit is { } limit ? $" LIMIT {limit}" : "");
            await using var command = FerryDatabase.Command(c, null, sql, [.. parameters]);
            var ports = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Port), ct);
            var bindings = (await BindingsOfAsync(c, null, ports.Select(p => p.Id).ToList(), ct)).ToLookup(b => b.PortId);
            return ports.Select(p => new PortWithBindings(p, bindings[p.Id].ToList())).ToList();
        }, cancellationToken);

    /// <summary>
    /// Applies <paramref name="change"/> to the port under its network's lock; with <paramref name="fixedIps"/> its addresses are
    /// replaced (kept ones stay, new ones are allocated, the rest freed). With <paramref name="bindHost"/> the port's active
    /// binding moves to that host (or goes, for ""), as a PUT of <c>binding:host_id</c> does.
    /// </summary>
    public Task<PortWithBindings> UpdatePortAsync(string id, Func<Port, Port> change, IReadOnlyList<FixedIpRequest>? fixedIps, BindingChange? bindHost,
        CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var current = await FindPortAsync(c, t, id, "", ct) ?? throw NeutronException.PortNotFound(id);
            _ = await FindNetworkAsync(c, t, current.NetworkId, db.Dialect.ForUpdate, ct);
            current = await FindPortAsync(c, t, id, "", ct) ?? throw NeutronException.PortNotFound(id);
            var updated = change(current);
            if (fixedIps is not null)
            {
                var subnets = await SubnetsOfAsync(c, t, current.NetworkId, ct);
                var kept = current.FixedIps.Where(ip => fixedIps.Any(r => r.IpAddress == ip.IpAddress && (r.SubnetId ?? ip.SubnetId) == ip.SubnetId)).ToList();
                foreach (var gone in current.FixedIps.Except(kept))
                {
                    await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM ip_allocations WHERE subnet_id = @s AND ip_address = @a AND port_id = @p",
                        ("@s", gone.SubnetId), ("@a", gone.IpAddress), ("@p", id)), ct);
                }
                var ips = new List<FixedIp>(kept);
                foreach (var request in fixedIps.Where(r => !kept.Any(k => k.IpAddress == r.IpAddress && (r.SubnetId ?? k.SubnetId) == k.SubnetId)))
                {
                    ips.Add(await AllocateAsync(c, t, id, current.NetworkId, subnets, request, ips, ct));
                }
                updated = updated with { FixedIps = ips };
            }
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "UPDATE ports SET device_id = @dev, data = @d WHERE id = @i",
                ("@i", id), ("@dev", updated.DeviceId), ("@d", Rows.Json(updated, PersistenceJsonContext.Default.Port))), ct);
            if (bindHost is not null)
            {
                await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM port_bindings WHERE port_id = @p AND (status = @a OR host = @h)",
                    ("@p", id), ("@a", PortBindingStatus.Active), ("@h", bindHost.Host)), ct);
                if (bindHost.Host.Length > 0)
                {
                    await InsertBindingAsync(c, t, bindHost.Binding(id, PortBindingStatus.Active), ct);
                }
            }
            return new PortWithBindings(updated, await BindingsOfAsync(c, t, [id], ct));
        }, cancellationToken);

    /// <summary>Deletes the port with its addresses and bindings; PortNotFound when there is none.</summary>
    public Task DeletePortAsync(string id, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            var port = await FindPortAsync(c, t, id, "", ct) ?? throw NeutronException.PortNotFound(id);
            _ = await FindNetworkAsync(c, t, port.NetworkId, db.Dialect.ForUpdate, ct);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM ip_allocations WHERE port_id = @p", ("@p", id)), ct);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM port_bindings WHERE port_id = @p", ("@p", id)), ct);
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM ports WHERE id = @p", ("@p", id)), ct);
        }, cancellationToken);

    // --- port bindings (the binding-extended extension) ---

    /// <summary>Adds an INACTIVE binding of the port for another host; 409 when the port has a binding for that host.</summary>
    public Task<PortBinding> CreateBindingAsync(string portId, BindingChange binding, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            _ = await FindPortAsync(c, t, portId, db.Dialect.ForUpdate, ct) ?? throw NeutronException.PortNotFound(portId);
            if (await FindBindingAsync(c, t, portId, binding.Host, ct) is not null)
            {
                throw new NeutronException(409, "PortBindingAlreadyExists", $"Binding for port {portId} on host {binding.Host} already exists.");
            }
            var created = binding.Binding(portId, PortBindingStatus.Inactive);
            await InsertBindingAsync(c, t, created, ct);
            return created;
        }, cancellationToken);

    /// <summary>
    /// Makes the port's binding for <paramref name="host"/> the active one; the one active before becomes INACTIVE (Nova deletes
    /// it after). 404 PortBindingNotFound; 409 PortBindingAlreadyActive when it is active already.
    /// </summary>
    public Task<PortBinding> ActivateBindingAsync(string portId, string host, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            _ = await FindPortAsync(c, t, portId, db.Dialect.ForUpdate, ct) ?? throw NeutronException.PortNotFound(portId);
            var binding = await FindBindingAsync(c, t, portId, host, ct) ?? throw NeutronException.PortBindingNotFound(portId, host);
            if (binding.Status == PortBindingStatus.Active)
            {
                throw new NeutronException(409, "PortBindingAlreadyActive", $"Binding for port {portId} on host {host} is already active.");
            }
            foreach (var other in await BindingsOfAsync(c, t, [portId], ct))
            {
                if (other.Status == PortBindingStatus.Active)
                {
                    await SaveBindingAsync(c, t, other with { Status = PortBindingStatus.Inactive }, ct);
                }
            }
            var active = binding with { Status = PortBindingStatus.Active };
            await SaveBindingAsync(c, t, active, ct);
            return active;
        }, cancellationToken);

    public Task<List<PortBinding>> ListBindingsAsync(string portId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            _ = await FindPortAsync(c, null, portId, "", ct) ?? throw NeutronException.PortNotFound(portId);
            return await BindingsOfAsync(c, null, [portId], ct);
        }, cancellationToken);

    /// <summary>Deletes the port's binding for <paramref name="host"/>; 404 PortBindingNotFound when there is none.</summary>
    public Task DeleteBindingAsync(string portId, string host, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            _ = await FindPortAsync(c, t, portId, db.Dialect.ForUpdate, ct) ?? throw NeutronException.PortNotFound(portId);
            if (await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "DELETE FROM port_bindings WHERE port_id = @p AND host = @h", ("@p", portId), ("@h", host)), ct) == 0)
            {
                throw NeutronException.PortBindingNotFound(portId, host);
            }
        }, cancellationToken);

    /// <summary>Every binding naming <paramref name="host"/>, for the invariant checks (no port bound where its guest is not).</summary>
    public Task<List<PortBinding>> ListBindingsOnHostAsync(string host, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null, "SELECT data FROM port_bindings WHERE host = @h ORDER BY port_id", ("@h", host));
            return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.PortBinding), ct);
        }, cancellationToken);

    // --- helpers (inside a read or write) ---

    private static async Task<Network?> FindNetworkAsync(DbConnection c, DbTransaction? t, string id, string forUpdate, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM networks WHERE id = @i" + forUpdate, ("@i", id));
        return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Network) : null;
    }

    private static async Task<Subnet?> FindSubnetAsync(DbConnection c, DbTransaction? t, string id, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM subnets WHERE id = @i", ("@i", id));
        return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Subnet) : null;
    }

    private static async Task<List<Subnet>> SubnetsOfAsync(DbConnection c, DbTransaction? t, string networkId, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM subnets WHERE network_id = @n", ("@n", networkId));
        var subnets = await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.Subnet), ct);
        return subnets.OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal).ToList();
    }

    private static async Task<Port?> FindPortAsync(DbConnection c, DbTransaction? t, string id, string forUpdate, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM ports WHERE id = @i" + forUpdate, ("@i", id));
        return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.Port) : null;
    }

    private static async Task<List<PortBinding>> BindingsOfAsync(DbConnection c, DbTransaction? t, IReadOnlyList<string> portIds, CancellationToken ct)
    {
        if (portIds.Count == 0)
        {
            return [];
        }
        var names = portIds.Select((_, i) => $"@p{i}").ToList();
        await using var command = FerryDatabase.Command(c, t, $"SELECT data FROM port_bindings WHERE port_id IN ({string.Join(", ", names)}) ORDER BY port_id, host",
            [.. portIds.Select((id, i) => (names[i], (object?)id))]);
        return await Rows.ReadAllAsync(command, r => Rows.FromJson(r.GetString(0), PersistenceJsonContext.Default.PortBinding), ct);
    }

    private static async Task<PortBinding?> FindBindingAsync(DbConnection c, DbTransaction? t, string portId, string host, CancellationToken ct)
    {
        await using var command = FerryDatabase.Command(c, t, "SELECT data FROM port_bindings WHERE port_id = @p AND host = @h", ("@p", portId), ("@h", host));
        return await command.ExecuteScalarAsync(ct) is string json ? Rows.FromJson(json, PersistenceJsonContext.Default.PortBinding) : null;
    }

    private static Task InsertBindingAsync(DbConnection c, DbTransaction t, PortBinding binding, CancellationToken ct) =>
        FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "INSERT INTO port_bindings(port_id, host, status, data) VALUES (@p, @h, @s, @d)",
            ("@p", binding.PortId), ("@h", binding.Host), ("@s", binding.Status), ("@d", Rows.Json(binding, PersistenceJsonContext.Default.PortBinding))), ct);

    private static Task SaveBindingAsync(DbConnection c, DbTransaction t, PortBinding binding, CancellationToken ct) =>
        FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "UPDATE port_bindings SET status = @s, data = @d WHERE port_id = @p AND host = @h",
            ("@p", binding.PortId), ("@h", binding.Host), ("@s", binding.Status), ("@d", Rows.Json(binding, PersistenceJsonContext.Default.PortBinding))), ct);

    /// <summary>A random MAC under Neutron's prefix that no port of the network has.</summary>
    private static async Task<string> FreeMacAsync(DbConnection c, DbTransaction t, string networkId, CancellationToken ct)
    {
        while (true)
        {
            var tail = RandomNumberGenerator.GetBytes(3);
            var mac = $"{MacPrefix}:{tail[0]:x2}:{tail[1]:x2}:{tail[2]:x2}";
            if (await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t, "SELECT 1 FROM ports WHERE network_id = @n AND mac_address = @m", ("@n", networkId), ("@m", mac)), ct) is null)
            {
                return mac;
            }
        }
    }

    /// <summary>Records one fixed IP of a port: the address asked for, or the lowest free one of the subnet's pools.</summary>
    private static async Task<FixedIp> AllocateAsync(DbConnection c, DbTransaction t, string portId, string networkId, List<Subnet> subnets,
        FixedIpRequest request, List<FixedIp> alreadyChosen, CancellationToken ct)
    {
        var subnet = request.SubnetId is { } subnetId
            ? subnets.FirstOrDefault(s => s.Id == subnetId) ?? throw new NeutronException(400, "InvalidInput",
                $"Invalid input for operation: Failed to create port on network {networkId}, because fixed_ips included invalid subnet {subnetId}.")
            : subnets.FirstOrDefault(s => Ipv4.TryParse(request.IpAddress, out var a) && Ipv4Cidr.TryParse(s.Cidr, out var n) && n.Value.Contains(a))
                ?? throw new NeutronException(400, "InvalidIpForNetwork", $"IP address {request.IpAddress} is not a valid IP for any of the subnets on the specified network.");
        Ipv4Cidr.TryParse(subnet.Cidr, out var cidr);
        string address;
        if (request.IpAddress is { } wanted)
        {
            if (!Ipv4.TryParse(wanted, out var a) || !cidr!.Value.Contains(a))
            {
                throw new NeutronException(400, "InvalidIpForSubnet", $"IP address {wanted} is not a valid IP for the specified subnet.");
            }
            address = Ipv4.Format(a);
            if (alreadyChosen.Any(ip => ip.IpAddress == address) || await FerryDatabase.ScalarAsync(FerryDatabase.Command(c, t,
                "SELECT 1 FROM ip_allocations WHERE subnet_id = @s AND ip_address = @a", ("@s", subnet.Id), ("@a", address)), ct) is not null)
            {
                throw new NeutronException(409, "IpAddressAlreadyAllocated",
                    $"IP address {address} already allocated in subnet {subnet.Id}");
            }
        }
        else
        {
            await using var taken = FerryDatabase.Command(c, t, "SELECT ip_address FROM ip_allocations WHERE subnet_id = @s", ("@s", subnet.Id));
            var used = (await Rows.ReadAllAsync(taken, r => r.GetString(0), ct)).Select(s => Ipv4.TryParse(s, out var u) ? u : 0).ToHashSet();
            address = FirstFree(subnet, used) ?? throw new NeutronException(409, "IpAddressGenerationFailure",
                $"No more IP addresses available on network {networkId}.");
        }
        try
        {
            await FerryDatabase.ExecuteAsync(FerryDatabase.Command(c, t, "INSERT INTO ip_allocations(subnet_id, ip_address, port_id) VALUES (@s, @a, @p)",
                ("@s", subnet.Id), ("@a", address), ("@p", portId)), ct);
        }
        catch (DbException e) when (SqlDialect.IsUniqueViolation(e))
        {
            throw new NeutronException(409, "IpAddressAlreadyAllocated", $"IP address {address} already allocated in subnet {subnet.Id}");
        }
        return new FixedIp(subnet.Id, address);
    }

    private static string? FirstFree(Subnet subnet, HashSet<uint> used)
    {
        foreach (var pool in subnet.AllocationPools)
        {
            if (!Ipv4.TryParse(pool.Start, out var start) || !Ipv4.TryParse(pool.End, out var end))
            {
                continue;
            }
            for (var a = start; a <= end && a >= start; a++)
            {
                if (!used.Contains(a))
                {
                    return Ipv4.Format(a);
                }
            }
        }
        return null;
    }
}

/// <summary>One fixed IP a port asks for: a subnet, an address, or both.</summary>
public sealed record FixedIpRequest(string? SubnetId, string? IpAddress);

/// <summary>What a port's binding to a host is: the host and how the compute plugs it.</summary>
public sealed record BindingChange(string Host, string VifType, Dictionary<string, string> VifDetails, string VnicType, Dictionary<string, string> Profile)
{
    public PortBinding Binding(string portId, string status) =>
        new() { PortId = portId, Host = Host, Status = status, VifType = VifType, VifDetails = VifDetails, VnicType = VnicType, Profile = Profile };
}

/// <summary>A page of ports by the indexed columns; null or empty lists filter nothing.</summary>
public sealed record PortQuery
{
    public IReadOnlyList<string>? Ids { get; init; }
    public IReadOnlyList<string>? NetworkIds { get; init; }
    public IReadOnlyList<string>? DeviceIds { get; init; }
    public IReadOnlyList<string>? ProjectIds { get; init; }
    public string? Marker { get; init; }
    public int? Limit { get; init; }
}
