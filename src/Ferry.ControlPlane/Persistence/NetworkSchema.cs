namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Versioned schema of the network service (the Neutron subset): networks, subnets, ports with their fixed IPs, and
/// port bindings. Each row keeps its record as JSON beside the columns that are looked up or must be unique (a MAC on a
/// network, an address on a subnet, a binding per port and host), so two API replicas cannot hand out one address.
/// Scripts are only ever appended.
/// </summary>
public static class NetworkSchema
{
    public const string Component = "network";

    public static readonly IReadOnlyList<string> Scripts =
    [
        """
        CREATE TABLE networks (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, data TEXT NOT NULL);
        CREATE TABLE subnets (id TEXT PRIMARY KEY, network_id TEXT NOT NULL, data TEXT NOT NULL);
        CREATE INDEX ix_subnets_network ON subnets(network_id);
        CREATE TABLE ports (
            id TEXT PRIMARY KEY, network_id TEXT NOT NULL, project_id TEXT NOT NULL, mac_address TEXT NOT NULL,
            device_id TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (network_id, mac_address));
        CREATE INDEX ix_ports_device ON ports(device_id);
        CREATE TABLE ip_allocations (subnet_id TEXT NOT NULL, ip_address TEXT NOT NULL, port_id TEXT NOT NULL, PRIMARY KEY (subnet_id, ip_address));
        CREATE INDEX ix_ip_allocations_port ON ip_allocations(port_id);
        CREATE TABLE port_bindings (port_id TEXT NOT NULL, host TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (port_id, host));
        CREATE INDEX ix_port_bindings_host ON port_bindings(host);
        """,
    ];
}
