using Ferry.ControlPlane.Persistence;
using System.Data.Common;
using Ferry.Core.Domain;
using Ferry.Core.Networking;

namespace Ferry.Host;

/// <summary>What a new user needs to boot at once: devstack-shaped flavors, the test image and a network.</summary>
internal static class Seed
{
    public const string TestImageId = "2d4b7a1e-6c1f-4a3e-9a8e-f3e7c0d9b001";

    /// <summary>The seeded network's and subnet's ids: fixed, so every API replica seeds the same one and a second seed is a no-op.</summary>
    public const string PrivateNetworkId = "7c1f0b6e-3a51-4c39-9d0e-5b2f8e6a0001";
    public const string PrivateSubnetId = "7c1f0b6e-3a51-4c39-9d0e-5b2f8e6a0002";

    /// <summary>
    /// The seeded subnet: devstack's range for its shared network, chosen as one unlikely to be the machine's own, since its
    /// gateway address sits on a bridge of the machine when guests have real NICs.
    /// </summary>
    public const string PrivateCidr = "192.168.233.0/24";

    /// <summary>That subnet's gateway with its prefix length: the address a bridge of this machine takes to reach the guests.</summary>
    public const string PrivateGateway = "192.168.233.1/24";

    /// <summary>
    /// A network <c>private</c> shared by every project, with an IPv4 subnet <c>private-subnet</c> (gateway .1, the rest
    /// allocatable), so a server created without naming a network gets a port and an address (Nova's <c>auto</c>).
    /// </summary>
    public static async Task ApplyNetworkAsync(NetworkStore networks, string ownerProject, TimeProvider time, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (await networks.GetNetworkAsync(PrivateNetworkId, cancellationToken) is null)
        {
            try
            {
                await networks.CreateNetworkAsync(new Network
                {
                    Id = PrivateNetworkId, ProjectId = ownerProject, Name = "private", Shared = true, CreatedAt = now, UpdatedAt = now, RevisionNumber = 1,
                }, cancellationToken);
            }
            catch (DbException e) when (SqlDialect.IsUniqueViolation(e))
            {
                // Another API replica seeded it first.
            }
        }
        if (await networks.GetSubnetAsync(PrivateSubnetId, cancellationToken) is not null)
        {
            return;
        }
        Ipv4Cidr.TryParse(PrivateCidr, out var cidr);
        try
        {
            await networks.CreateSubnetAsync(new Subnet
            {
                Id = PrivateSubnetId, NetworkId = PrivateNetworkId, ProjectId = ownerProject, Name = "private-subnet", Cidr = cidr!.Value.ToString(),
                GatewayIp = Ipv4.Format(cidr.Value.FirstHost), AllocationPools = [new IpRange(Ipv4.Format(cidr.Value.FirstHost + 1), Ipv4.Format(cidr.Value.LastHost))],
                // No DHCP server runs here: guests take their address from the config drive (network_data.json's static form).
                EnableDhcp = false,
                CreatedAt = now, UpdatedAt = now,
            }, cancellationToken);
        }
        catch (Exception e) when (e is DbException db && SqlDialect.IsUniqueViolation(db) || e is NeutronException { Type: "InvalidInput" })
        {
            // Another API replica seeded it first (or the operator made an overlapping subnet there).
        }
    }

    public static async Task ApplyAsync(CatalogStore catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        (string Id, string Name, int Vcpus, int Ram, int Disk)[] flavors =
        [
            // devstack's order, so m1.tiny is internal id 1 as in Nova (migrations show it as Old/New Flavor).
            ("1", "m1.tiny", 1, 512, 1),
            ("2", "m1.small", 1, 2048, 20),
            ("3", "m1.medium", 2, 4096, 40),
            ("42", "m1.nano", 1, 64, 1),
        ];
        foreach (var f in flavors)
        {
            if (await catalog.FindFlavorAsync(f.Id, cancellationToken) is null)
            {
                await catalog.CreateFlavorAsync(internalId => new Flavor
                {
                    InternalId = internalId, Id = f.Id, Name = f.Name, Vcpus = f.Vcpus, MemoryMb = f.Ram, RootGb = f.Disk,
                }, cancellationToken);
            }
        }
        if (await catalog.FindImageAsync(TestImageId, cancellationToken) is null)
        {
            await catalog.SaveImageAsync(new Image
            {
                Id = TestImageId,
                Name = "ferry-test-guest",
                SizeBytes = 1 << 20,
                CreatedAt = time.GetUtcNow(),
                Properties = new() { ["hw_architecture"] = "x86_64" },
            }, cancellationToken);
        }
    }
}
