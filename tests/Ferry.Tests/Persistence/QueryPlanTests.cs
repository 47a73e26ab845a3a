using Ferry.ControlPlane.Persistence;
using Ferry.Tests.Shared;

namespace Ferry.Tests.Persistence;

public sealed class SqliteQueryPlanTests() : QueryPlanTests(DatabaseEngine.Sqlite);

[Collection(PostgresServer.Collection)]
public sealed class PostgresQueryPlanTests() : QueryPlanTests(DatabaseEngine.PostgreSql);

/// <summary>
/// The list queries that must stay fast at 100,000 instances read through an index, in order, with no sort of
/// their own: each engine's plan is asked (SQLite's EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN with sequential scans
/// and sorts priced out, so that a plan still holding one has no index to use instead, even on a small table).
/// </summary>
public abstract class QueryPlanTests : IDisposable
{
    private readonly TestDatabase _files;
    private readonly FerryDatabase _db;

    protected QueryPlanTests(DatabaseEngine engine)
    {
        _files = new TestDatabase(engine);
        _db = _files.Open();
        DatabaseSchema.Sync(_db);
    }

    public void Dispose() => _files.Dispose();

    /// <param name="sortAllowed">Let PostgreSQL sort (a selective filter's few rows): otherwise any plan in index order wins.</param>
    private string Plan(string sql, IEnumerable<(string Name, object? Value)> parameters, bool sortAllowed = false) =>
        _db.Write((c, t) =>
        {
            var postgres = _db.Dialect.Engine == DatabaseEngine.PostgreSql;
            if (postgres)
            {
                using var off = FerryDatabase.Command(c, t, "SET LOCAL enable_seqscan = off" + (sortAllowed ? "" : "; SET LOCAL enable_sort = off"));
                off.ExecuteNonQuery();
            }
            using var explain = FerryDatabase.Command(c, t, (postgres ? "EXPLAIN " : "EXPLAIN QUERY PLAN ") + sql, [.. parameters]);
            using var reader = explain.ExecuteReader();
            var lines = new List<string>();
            while (reader.Read())
            {
                lines.Add(reader.GetValue(postgres ? 0 : 3).ToString()!);
            }
            return string.Join("\n", lines);
        });

    /// <summary>
    /// 2,000 instances over 40 projects, a few of them moving, with statistics: on an empty table without any, PostgreSQL
    /// takes whichever index it meets first for a full scan, which says nothing about the plan of a real table.
    /// </summary>
    private void SeedAndAnalyze()
    {
        new InstanceStore(_db, TimeProvider.System).CreateMany(2000, (n, id) => StoreTests.NewInstance(id) with
        {
            ProjectId = $"p{n % 40}",
            UserId = $"u{n % 7}",
            TaskState = n % 500 == 0 ? Ferry.Core.Domain.TaskState.Migrating : null,
        });
        _db.Write((c, t) =>
        {
            using var analyze = FerryDatabase.Command(c, t, "ANALYZE instances");
            analyze.ExecuteNonQuery();
        });
    }

    /// <summary>2,000 migrations between 100 hosts, with statistics: one host's are a few dozen of them.</summary>
    private void SeedMigrationsAndAnalyze() =>
        _db.Write((c, t) =>
        {
            for (var n = 0; n < 2000; n++)
            {
                using var insert = FerryDatabase.Command(c, t,
                    "INSERT INTO migrations(uuid, instance_uuid, source_compute, dest_compute, status, migration_type, created_at, data) " +
                    "VALUES (@u, @i, @s, @d, 'completed', 'live-migration', @c, '{}')",
                    ("@u", Guid.NewGuid().ToString()), ("@i", Guid.NewGuid().ToString()), ("@s", $"compute{n % 100}"), ("@d", $"compute{(n + 1) % 100}"),
                    ("@c", Rows.Time(DateTimeOffset.UnixEpoch.AddSeconds(n))));
                insert.ExecuteNonQuery();
            }
            using var analyze = FerryDatabase.Command(c, t, "ANALYZE migrations");
            analyze.ExecuteNonQuery();
            return 0;
        });

    private void AssertIndexedInOrder(string plan, string indexes)
    {
        Assert.True(indexes.Split('|').Any(index => plan.Contains(index, StringComparison.Ordinal)), $"none of {indexes} in the plan:\n{plan}");
        if (_db.Dialect.Engine == DatabaseEngine.PostgreSql)
        {
            Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
            Assert.DoesNotContain("Sort", plan.Replace("Sort Key", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
        else
        {
            Assert.DoesNotContain("TEMP B-TREE", plan, StringComparison.Ordinal);
        }
    }

    public static TheoryData<string?, string?, string?, bool, string> PageShapes => new()
    {
        { null, null, null, false, "ix_instances_created" },
        { null, null, null, true, "ix_instances_created" },
        { "p1", null, null, true, "ix_instances_project_created" },
        { null, "host-a", null, true, "ix_instances_live_host" },
        // SQLite may take the build check's (vm_state, created_at) index: its rows end in the rowid, which is the id.
        { null, null, "stopped", true, "ix_instances_status_created|ix_instances_building" },
    };

    [Theory]
    [MemberData(nameof(PageShapes))]
    public void InstancePage_EachFilterAndMarker_SeeksItsIndexInOrder(string? project, string? host, string? vmState, bool marker, string index)
    {
        var filter = new InstanceListFilter { ProjectId = project, Host = host, VmStates = vmState is null ? null : [vmState] };
        var (sql, parameters) = InstanceStore.PageSql(filter, marker ? new InstancePosition("2026-12-01T00:00:00.0000000Z", 42) : null, 1000);

        var plan = Plan(sql, parameters);

        AssertIndexedInOrder(plan, index);
    }

    [Fact]
    public void UsageByHost_ReadsOnlyTheCoveringIndex()
    {
        var plan = Plan(InstanceStore.UsageByHostSql, []);

        Assert.Contains("ix_instances_usage", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        if (_db.Dialect.Engine == DatabaseEngine.Sqlite)
        {
            Assert.Contains("COVERING INDEX", plan, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void UsageOfHosts_SeeksTheCoveringIndex()
    {
        var plan = Plan(string.Format(System.Globalization.CultureInfo.InvariantCulture, InstanceStore.UsageOfHostsSql, "@h0, @h1"), [("@h0", "a"), ("@h1", "b")]);

        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        // PostgreSQL may seek any index that leads with host on a table it has no statistics of.
        Assert.Contains(_db.Dialect.Engine == DatabaseEngine.Sqlite ? "SEARCH instances USING COVERING INDEX ix_instances_usage (host=?)" : "(host = ANY", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void ServicesChangedSince_SeeksTheChangeIndex()
    {
        var plan = Plan(ServiceStore.ChangedSinceSql, [("@after", 5L), ("@b", "nova-compute")]);

        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        Assert.Contains(_db.Dialect.Engine == DatabaseEngine.Sqlite ? "ix_services_change_seq" : "(change_seq >", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void UsageOfProject_ReadsOnlyTheCoveringIndex()
    {
        SeedAndAnalyze();
        var plan = Plan(InstanceStore.ProjectUsageSql, [("@p", "p1"), ("@all", 0), ("@usr", "u1")]);

        Assert.Contains("ix_instances_project_usage", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        if (_db.Dialect.Engine == DatabaseEngine.Sqlite)
        {
            Assert.Contains("COVERING INDEX", plan, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void InstancesInTaskStates_SeekTheTaskStateIndex()
    {
        SeedAndAnalyze();
        var plan = Plan(string.Format(System.Globalization.CultureInfo.InvariantCulture, InstanceStore.InTaskStatesSql, "@s0, @s1"), [("@s0", "migrating"), ("@s1", "rebuilding")]);

        Assert.Contains("ix_instances_task_state", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void MigrationsOfHost_SeekTheSourceAndDestinationIndexes()
    {
        SeedMigrationsAndAnalyze();
        var (sql, parameters) = MigrationStore.ListSql(new MigrationFilter(Host: "compute7"));

        var plan = Plan(sql, parameters, sortAllowed: true);

        Assert.Contains("ix_migrations_source", plan, StringComparison.Ordinal);
        Assert.Contains("ix_migrations_dest", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("SCAN migrations", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void MigrationsPageAfterMarker_SeeksTheCreatedIndexInOrder()
    {
        var (sql, parameters) = MigrationStore.ListSql(new MigrationFilter(), new MigrationPosition("2026-01-01T00:00:00.0000000Z", 7), 500);

        var plan = Plan(sql, parameters);

        AssertIndexedInOrder(plan, "ix_migrations_created");
    }

    [Fact]
    public void UnfinishedMigrations_SeekThePartialIndex()
    {
        var plan = Plan(MigrationStore.UnfinishedSql, []);

        Assert.Contains("ix_migrations_unfinished", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void LatestFault_SeeksTheFaultIndex()
    {
        var plan = Plan("SELECT code FROM instance_faults WHERE instance_uuid = @i ORDER BY id DESC LIMIT 1", [("@i", "x")]);

        AssertIndexedInOrder(plan, "ix_instance_faults_instance");
    }
}
