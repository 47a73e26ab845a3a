using System.Collections.Concurrent;
using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Errors;
using Ferry.Tests.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Placement;

/// <summary>
/// Two <see cref="PlacementService"/>s, each on its own <see cref="FerryDatabase"/> (own pool, own cache, no lock
/// in common) over one PostgreSQL database: two placement replicas.
/// </summary>
[Collection(PostgresServer.Collection)]
public sealed class PlacementReplicaTests : IDisposable
{
    private readonly TestDatabase _files = new(DatabaseEngine.PostgreSql);
    private readonly FerryDatabase _database;
    private readonly PlacementService _first;
    private readonly PlacementService _second;

    public PlacementReplicaTests()
    {
        _database = _files.Open();
        _first = new PlacementService(_database);
        _second = new PlacementService(_files.Open());
    }

    public void Dispose() => _files.Dispose();

    [Fact]
    public async Task PutAllocations_ManyParallelClaimsThroughTwoReplicas_NeverOverCommit()
    {
        const int Providers = 3;
        const int VcpusEach = 8;
        var providers = Enumerable.Range(0, Providers).Select(i => AddProvider(_first, $"host-{i}", VcpusEach)).ToArray();
        var replicas = new[] { _first, _second };
        var created = new ConcurrentBag<string>();
        var full = 0;
        var concurrent = 0;

        // 2 replicas x 4 workers x 15 claims of one VCPU = 120 claims on 24 VCPUs.
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            var replica = replicas[w % 2];
            for (var i = 0; i < 15; i++)
            {
                var consumer = Guid.NewGuid().ToString();
                try
                {
                    replica.PutAllocations(consumer, Request(providers[(w + i) % Providers], vcpu: 1));
                    created.Add(consumer);
                }
                catch (PlacementConflictException e) when (e.Message.StartsWith("Unable to allocate inventory", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref full);
                }
                catch (PlacementConflictException)
                {
                    Interlocked.Increment(ref concurrent);
                }
            }
        }));
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(2));

        var (used, rows) = _database.Read(c =>
        {
            using var command = FerryDatabase.Command(c, null, "SELECT rp, SUM(used), COUNT(DISTINCT consumer) FROM allocations WHERE rc = 'VCPU' GROUP BY rp");
            var byProvider = Rows.ReadAll(command, r => (Rp: r.GetString(0), Used: Convert.ToInt64(r.GetValue(1)), Consumers: Convert.ToInt64(r.GetValue(2))));
            return (byProvider.ToDictionary(p => p.Rp, p => p.Used), byProvider.Sum(p => p.Consumers));
        });
        Assert.All(providers, rp => Assert.InRange(used.GetValueOrDefault(rp), 0, VcpusEach));
        Assert.Equal(created.Count, rows);
        Assert.Equal(created.Count, used.Values.Sum());
        Assert.Equal(120, created.Count + full + concurrent);
        Assert.Equal(Providers * VcpusEach, created.Count); // Enough claims to fill every provider.
        foreach (var replica in replicas)
        {
            Assert.All(providers, rp => Assert.Equal(used[rp], replica.GetProviderUsages(rp)["VCPU"]));
            Assert.All(created, consumer => Assert.Equal(1, replica.GetAllocations(consumer).ConsumerGeneration));
        }
    }

    [Fact]
    public void SetInventories_CallerGenerationStaleAfterOtherReplicaWrote_ThrowsGenerationConflict()
    {
        var rp = AddProvider(_first, "host-a", 8);
        Assert.Equal(1, _second.GetProvider(rp)!.Generation);
        _first.SetInventories(rp, 1, Inventories(16));

        var ex = Assert.Throws<PlacementConflictException>(() => _second.SetInventories(rp, 1, Inventories(4)));

        Assert.Equal(
            $"resource provider generation conflict: resource provider {rp} is at generation 2, not 1. Please update the generation and try again.",
            ex.Message);
        Assert.Equal(16, _second.GetInventories(rp)["VCPU"].Total);
        _second.SetInventories(rp, 2, Inventories(4));
        Assert.Equal(4, _first.GetInventories(rp)["VCPU"].Total);
    }

    [Fact]
    public void Writes_OfOneReplica_AreSeenByTheOtherAndCheckedAgainstIt()
    {
        var rp = AddProvider(_first, "host-a", 4);
        _first.PutAllocations("c1", Request(rp, vcpu: 3));

        Assert.Equal(3, _second.GetProviderUsages(rp)["VCPU"]);
        Assert.Equal(1, _second.GetAllocations("c1").ConsumerGeneration);
        Assert.Throws<PlacementConflictException>(() => _second.PutAllocations("c2", Request(rp, vcpu: 2)));
        var consumerConflict = Assert.Throws<PlacementConflictException>(() => _second.PutAllocations("c1", Request(rp, vcpu: 1)));
        Assert.Equal("consumer generation conflict - expected null but got 1", consumerConflict.Message);

        _second.MoveAllocations("c1", "c3");
        Assert.Null(_first.GetAllocations("c1").ConsumerGeneration);
        Assert.Equal(3, _first.GetAllocations("c3").Allocations[rp]["VCPU"]);
        _first.DeleteProvider(rp);
        Assert.Null(_second.GetProvider(rp));
        Assert.Null(_second.GetAllocations("c3").ConsumerGeneration);
    }

    [Fact]
    public void PutAllocations_WriteOfAReplicaThatDiedBeforeLoggingIt_IsFoundByTheConditionalWrite()
    {
        var rp = AddProvider(_first, "host-a", 4);
        Assert.Equal(1, _second.GetProvider(rp)!.Generation);
        // What a replica killed between its commit and its version bump leaves: a claim nobody was told about.
        _database.Write((c, t) =>
        {
            foreach (var sql in new[]
            {
                "INSERT INTO consumers(uuid, project_id, user_id, generation) VALUES ('ghost', 'p1', 'u1', 1)",
                $"INSERT INTO allocations(consumer, rp, rc, used) VALUES ('ghost', '{rp}', 'VCPU', 3)",
                $"UPDATE resource_providers SET generation = 2 WHERE uuid = '{rp}'",
            })
            {
                using var command = FerryDatabase.Command(c, t, sql);
                command.ExecuteNonQuery();
            }
        });

        var ex = Assert.Throws<PlacementConflictException>(() => _second.PutAllocations("c1", Request(rp, vcpu: 2)));

        Assert.StartsWith("Unable to allocate inventory", ex.Message);
        Assert.Equal(3, _second.GetProviderUsages(rp)["VCPU"]);
        _second.PutAllocations("c1", Request(rp, vcpu: 1));
        Assert.Equal(4, _first.GetProviderUsages(rp)["VCPU"]);
    }

    [Fact]
    public void GetAllocationCandidates_AfterOtherReplicaClaimsAndFrees_SchedulerCacheFollows()
    {
        var full = AddProvider(_first, "host-a", 2);
        var spare = AddProvider(_first, "host-b", 2);
        var want = new Dictionary<string, long> { ["VCPU"] = 2 };
        Assert.Equal(new[] { full, spare }.Order(), _second.GetAllocationCandidates(want).ProviderUuids.Order());

        _first.PutAllocations("c1", Request(full, vcpu: 2));
        Assert.Equal([spare], _second.GetAllocationCandidates(want).ProviderUuids);

        _first.DeleteAllocations("c1");
        Assert.Equal(new[] { full, spare }.Order(), _second.GetAllocationCandidates(want).ProviderUuids.Order());
    }

    [Fact]
    public async Task GetProviderUsages_WriteCommittedAfterTheLookByATransactionOlderThanOnesSeen_IsSeen()
    {
        var rp = AddProvider(_first, "host-a", 4);
        var other = AddProvider(_first, "host-b", 4);
        Assert.Equal(1, _second.GetProvider(rp)!.Generation);

        // An older transaction (its id taken first) is still open while a younger one commits and the second replica
        // looks: the log must be read from the older one's id, not from the newest seen, or its write is never seen.
        await using var connection = new Npgsql.NpgsqlConnection(_files.Connection);
        await connection.OpenAsync();
        await using var older = await connection.BeginTransactionAsync();
        await Exec(connection, older, "SELECT pg_current_xact_id()");
        _first.PutAllocations("young", Request(other, vcpu: 1));
        Assert.Equal(1, _second.GetProviderUsages(other)["VCPU"]);
        foreach (var sql in new[]
        {
            "INSERT INTO consumers(uuid, project_id, user_id, generation) VALUES ('old', 'p1', 'u1', 1)",
            $"INSERT INTO allocations(consumer, rp, rc, used) VALUES ('old', '{rp}', 'VCPU', 3)",
            $"UPDATE resource_providers SET generation = 2 WHERE uuid = '{rp}'",
            $"INSERT INTO placement_log(txid, rp, logged_at) VALUES (pg_current_xact_id()::text::bigint, '{rp}', 0)",
        })
        {
            await Exec(connection, older, sql);
        }
        await older.CommitAsync();

        Assert.Equal(3, _second.GetProviderUsages(rp)["VCPU"]);
        Assert.Equal(2, _second.GetProvider(rp)!.Generation);
        Assert.Equal(1, _second.GetAllocations("old").ConsumerGeneration);

        static async Task Exec(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction transaction, string sql)
        {
            await using var command = new Npgsql.NpgsqlCommand(sql, connection, transaction);
            await command.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task PutAllocations_ClaimWaitingOnOneProvidersRow_LeavesClaimsAndReadsOfOtherProvidersFree()
    {
        var ct = CancellationToken.None; // xunit v2 here: the waits below are bounded each
        var busy = AddProvider(_first, "host-a", 4);
        var free = AddProvider(_first, "host-b", 4);

        // Another writer holds the busy provider's row, so a claim there waits in the database until that one ends.
        await using var connection = new Npgsql.NpgsqlConnection(_files.Connection);
        await connection.OpenAsync(ct);
        await using var holder = await connection.BeginTransactionAsync(ct);
        await using (var hold = new Npgsql.NpgsqlCommand($"SELECT 1 FROM resource_providers WHERE uuid = '{busy}' FOR UPDATE", connection, holder))
        {
            await hold.ExecuteNonQueryAsync(ct);
        }
        var waiting = _first.PutAllocationsAsync("c-busy", Request(busy, vcpu: 1), ct);
        await WaitForBlockedLockAsync(ct);

        // The same replica claims and reads another provider meanwhile: a lock held across the waiting claim's round trip
        // (the one placement lock before) would hold both until the other writer ended.
        var claimed = await _first.PutAllocationsAsync("c-free", Request(free, vcpu: 2), ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
        var usages = await _first.GetProviderUsagesAsync(free, ct).WaitAsync(TimeSpan.FromSeconds(30), ct);

        Assert.Equal(1, claimed.ConsumerGeneration);
        Assert.Equal(2, usages["VCPU"]);
        Assert.False(waiting.IsCompleted);
        await holder.RollbackAsync(ct);
        await waiting.WaitAsync(TimeSpan.FromSeconds(30), ct);
        Assert.Equal(1, _second.GetProviderUsages(busy)["VCPU"]);
        Assert.Equal(2, _second.GetProviderUsages(free)["VCPU"]);
    }

    /// <summary>Until some backend of this database waits for a lock (the claim behind the held row).</summary>
    private async Task WaitForBlockedLockAsync(CancellationToken cancellationToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(TimeSpan.FromSeconds(30));
        await using var connection = new Npgsql.NpgsqlConnection(_files.Connection);
        await connection.OpenAsync(bounded.Token);
        while (true)
        {
            await using var look = new Npgsql.NpgsqlCommand(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()", connection);
            if (Convert.ToInt64(await look.ExecuteScalarAsync(bounded.Token)) > 0)
            {
                return;
            }
            await Task.Delay(10, bounded.Token);
        }
    }

    [Fact]
    public async Task SetInventories_ThreeClasses_OneInsertAndTheWholeWriteInOneRoundTrip()
    {
        var uuid = Guid.NewGuid().ToString();
        _first.EnsureProvider(uuid, "host-a");
        var inventories = new Dictionary<string, Inventory>
        {
            ["VCPU"] = new() { Total = 8, AllocationRatio = 4 },
            ["MEMORY_MB"] = new() { Total = 8192, Reserved = 512 },
            ["DISK_GB"] = new() { Total = 100, MaxUnit = 50 },
        };

        var commands = await NpgsqlCommands.RecordAsync(() => _first.SetInventoriesAsync(uuid, 0, inventories, CancellationToken.None));

        // The refresh's look at the log, then one batch: log, delete, insert, conditional generation.
        var write = Assert.Single(commands, c => c.Contains("INSERT INTO inventories", StringComparison.Ordinal));
        Assert.Contains("UPDATE resource_providers SET generation", write, StringComparison.Ordinal);
        Assert.Contains("INSERT INTO placement_log", write, StringComparison.Ordinal);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(write, "INSERT INTO inventories"));
        Assert.Equal(inventories, await _second.GetInventoriesAsync(uuid, CancellationToken.None));
        Assert.Equal(1, _second.GetProvider(uuid)!.Generation);
    }

    private static string AddProvider(PlacementService placement, string name, long vcpus)
    {
        var uuid = Guid.NewGuid().ToString();
        placement.EnsureProvider(uuid, name);
        placement.SetInventories(uuid, 0, Inventories(vcpus));
        return uuid;
    }

    private static Dictionary<string, Inventory> Inventories(long vcpus) => new() { ["VCPU"] = new Inventory { Total = vcpus } };

    private static AllocationRequest Request(string rp, long vcpu) => new()
    {
        Allocations = new() { [rp] = new Dictionary<string, long> { ["VCPU"] = vcpu } },
        ProjectId = "p1",
        UserId = "u1",
        ConsumerGeneration = null,
    };
}
