using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>What the scheduler reads about hosts besides placement: nodes, their services, where instances run.</summary>
public interface IHostStateSource
{
    IReadOnlyList<ComputeNode> GetComputeNodes();

    /// <summary>The nova-compute service of each host, by host name.</summary>
    IReadOnlyDictionary<string, Service> GetComputeServices();

    /// <summary>The availability zone of each host (hosts not listed are in the default zone "nova").</summary>
    string GetAvailabilityZone(string host);
}
