using System.Diagnostics;

namespace Ferry.Tests.Persistence;

/// <summary>What a piece of code sends to PostgreSQL, through Npgsql's tracing: only that code's, as other tests run in parallel under other traces.</summary>
internal static class NpgsqlCommands
{
    /// <summary>The commands (a batch is one) <paramref name="act"/> sends to PostgreSQL, in order: their SQL.</summary>
    public static async Task<List<string>> RecordAsync(Func<Task> act)
    {
        var statements = new List<string>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        Activity? test = null;
        listener.ActivityStopped = activity =>
        {
            if (activity.Source.Name == "Npgsql" && test is not null && activity.TraceId == test.TraceId
                && (activity.GetTagItem("db.query.text") ?? activity.GetTagItem("db.statement")) is string sql)
            {
                lock (statements)
                {
                    statements.Add(sql);
                }
            }
        };
        ActivitySource.AddActivityListener(listener);

        using (test = new Activity("recorded").SetIdFormat(ActivityIdFormat.W3C).Start())
        {
            await act();
        }
        lock (statements)
        {
            return [.. statements];
        }
    }
}
