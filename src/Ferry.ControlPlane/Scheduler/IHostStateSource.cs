using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler;

/// <summary>What the scheduler reads about hosts besides placement: nodes, their services, where instances run.</summary>
/// <remarks>
/// The filters and weighers run synchronously over hundreds of hosts, so they never wait on a database: a request first
/// awaits <see cref="RefreshAsync"/>, and the host getters then answer from what it loaded.
/// </remarks>
public interface IHostStateSource
{
    /// <summary>Brings the nodes and services up to date (reading the database when they may have changed), before a request filters.</summary>
    ValueTask RefreshAsync(CancellationToken cancellationToken);

    /// <summary>The compute nodes as of the last <see cref="RefreshAsync"/>, in id order.</summary>
    IReadOnlyList<ComputeNode> GetComputeNodes();

    /// <summary>The position in <see cref="GetComputeNodes"/> of the node with this uuid, or -1.</summary>
    int IndexOfComputeNode(string uuid);

    /// <summary>The nova-compute service of each host, by host name, as of the last <see cref="RefreshAsync"/>.</summary>
    IReadOnlyDictionary<string, Service> GetComputeServices();

    /// <summary>The availability zone of each host (hosts not listed are in the default zone "nova").</summary>
    string GetAvailabilityZone(string host);

    /// <summary>
    /// When the services' heartbeats were read: a service is judged up or down as of then, so a view a few seconds old
    /// never takes a live host for a silent one (null: they are current).
    /// </summary>
    DateTimeOffset? HeartbeatsAsOf => null;
}
