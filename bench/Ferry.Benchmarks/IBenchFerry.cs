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

    /// <summary>POSTs a server action; anything but <paramref name="expected"/> throws with the answer.</summary>
    async Task ActionAsync(string id, string json, HttpStatusCode expected)
    {
        using var response = await Http.SendAsync(InProcessFerry.Post($"servers/{id}/action", json));
        if (response.StatusCode != expected)
        {
            throw new InvalidOperationException($"action on {id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>Synchronous form, for the latency loop on its dedicated thread.</summary>
    void Action(string id, string json, HttpStatusCode expected)
    {
        using var response = Http.Send(InProcessFerry.Post($"servers/{id}/action", json));
        if (response.StatusCode != expected)
        {
            using var reader = new StreamReader(response.Content.ReadAsStream());
            throw new InvalidOperationException($"action on {id}: {(int)response.StatusCode} {reader.ReadToEnd()}");
        }
    }

    Migration? NewestMigration(string instanceId) => Migrations.List(new MigrationFilter(InstanceUuid: instanceId)).FirstOrDefault();
}
