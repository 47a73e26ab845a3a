using Ferry.Core.Errors;

namespace Ferry.Core.Networking;

/// <summary>
/// A Neutron fault: its HTTP status and its type name, the two things Neutron's error body
/// (<c>{"NeutronError": {"type", "message", "detail"}}</c>) carries beside the message.
/// </summary>
public sealed class NeutronException(int status, string type, string message) : FerryException(message, status)
{
    public string Type { get; } = type;

    public static NeutronException NetworkNotFound(string id) => new(404, "NetworkNotFound", $"Network {id} could not be found.");

    public static NeutronException SubnetNotFound(string id) => new(404, "SubnetNotFound", $"Subnet {id} could not be found.");

    public static NeutronException PortNotFound(string id) => new(404, "PortNotFound", $"Port {id} could not be found.");

    /// <summary>A request body or query Neutron's attribute validation refuses.</summary>
    public static NeutronException BadRequest(string message) => new(400, "HTTPBadRequest", message);

    /// <summary>A value of a known attribute that is not valid (Neutron's InvalidInput).</summary>
    public static NeutronException InvalidInput(string message) => new(400, "InvalidInput", $"Invalid input for operation: {message}.");

    public static NeutronException PortBindingNotFound(string portId, string host) =>
        new(404, "PortBindingNotFound", $"Binding for port {portId} for host {host} could not be found.");
}
