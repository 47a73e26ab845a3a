using System.Net;
using System.Text.RegularExpressions;
using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;
using Microsoft.Extensions.DependencyInjection;

namespace Ferry.FunctionalTests.Flows;

/// <summary>An operator follows a move in the log: one line per step, naming the instance, the migration, the host and the time it took.</summary>
public sealed partial class MoveLogTests(LoggingFerryFixture fixture) : FlowTest<LoggingFerryFixture>(fixture)
{
    [Fact]
    public async Task LiveMigrate_Completed_OneLinePerStepWithIdsHostAndDuration()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (instance, migration) = await WaitForMoveEndAsync(id);
        Assert.Equal(MigrationStatus.Completed, migration.Status);

        // A step's line is written when the step returns, which may be after the API shows the move's end (over
        // RabbitMQ the source's last reply lands later): wait for every step's line, then read them once.
        var steps = new[] { "conductor_live_migrate_instance", "compute_check_can_live_migrate_destination", "compute_pre_live_migration",
            "compute_live_migration", "compute_post_live_migration_at_destination" };
        var deadline = DateTime.UtcNow + WaitLimit;
        while (!steps.All(step => Fixture.Logs.Lines.Any(l => l.Message.StartsWith(step + " of instance " + id, StringComparison.Ordinal)))
            && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }
        var lines = Fixture.Logs.Lines.Select(l => l.Message).Where(l => l.Contains(id, StringComparison.Ordinal)).ToList();
        string Line(string step, string host) =>
            Assert.Single(lines, l => l.StartsWith(step + " of instance " + id, StringComparison.Ordinal) && l.Contains(host, StringComparison.Ordinal));

        Assert.Matches(DoneLine(), Line("conductor_live_migrate_instance", "to compute2"));
        foreach (var (step, host) in new[]
        {
            ("compute_check_can_live_migrate_destination", "compute2"),
            ("compute_pre_live_migration", "compute2"),
            ("compute_live_migration", "compute1"),
            ("compute_post_live_migration_at_destination", "compute2"),
        })
        {
            var line = Line(step, $"on {host}");
            Assert.Contains($"(migration {migration.Uuid})", line);
            Assert.Matches(DoneLine(), line);
        }
        Assert.Contains(lines, l => l.StartsWith("compute_build_and_run_instance of instance " + id, StringComparison.Ordinal) && l.Contains("on compute1", StringComparison.Ordinal));
        Assert.Equal("compute2", instance.Host);
    }

    [Fact]
    public async Task LiveMigrate_ToOwnHost_FailureLineSaysWhy()
    {
        var id = await BootAsync("compute1");
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute1"));
        await WaitForMoveEndAsync(id);

        Assert.Contains(Fixture.Logs.Lines, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Warning
            && l.Message == $"conductor_live_migrate_instance of instance {id} failed: Unable to migrate instance ({id}) to current host (compute1).");
    }

    [Fact]
    public async Task LiveMigrate_PreLiveMigrationFails_FaultDetailsAreTheCauseNotAStackTrace()
    {
        var id = await BootAsync("compute1");
        Driver("compute2").Faults.FailNext(Ferry.Virt.Fake.FakeSteps.PreLiveMigration);
        Assert.Equal(HttpStatusCode.Accepted, await LiveMigrateAsync(id, "compute2"));
        var (_, migration) = await WaitForMoveEndAsync(id);

        var fault = Fixture.Ferry.Services.GetRequiredService<ActionStore>().LatestFault(id)!;

        Assert.Equal(500, fault.Code);
        Assert.StartsWith("InjectedFailureException: ", fault.Details);
        Assert.DoesNotContain(" at Ferry.", fault.Details);
        Assert.Contains(Fixture.Logs.Lines, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Warning
            && l.Message.StartsWith($"compute_pre_live_migration of instance {id} (migration {migration.Uuid}) on compute2: failed after ", StringComparison.Ordinal));
    }

    [GeneratedRegex(@": done in \d+ ms$")]
    private static partial Regex DoneLine();
}
