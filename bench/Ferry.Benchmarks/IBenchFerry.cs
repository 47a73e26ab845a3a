using System.Net;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

namespace Ferry.Benchmarks;

/// <summary>
/// A running Ferry the move benchmarks drive: through its REST API, with its database read to see when a move has
/// ended. <see cref="InProcessFerry"/> is the embedded shape, <see cref="DistributedFerry"/> the distributed one.
/// </summary>
internal interface IBenchFerry
{
    HttpClient Http { get; }

    InstanceStore Instances { get; }

    MigrationStore Migrations { get; }

    /// <summary>The compute hosts, compute1..computeN in order.</summary>
    IReadOnlyList<string> HostNames { get; }

    /// <summary>How often a latency loop reads the database: tight in-process, less often where each read is a round trip.</summary>
    TimeSpan LatencyPoll { get; }

    Task<List<(string Id, string Host)>> BootManyAsync(IReadOnlyList<string> hosts);

    Task ActionAsync(string id, string json, HttpStatusCode expected);

    void Action(string id, string json, HttpStatusCode expected);

    Migration? NewestMigration(string instanceId);
}
