using System.Data.Common;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Persistence;

/// <summary>
/// Writes services' heartbeats in groups (a group commit): the caller that finds no group being written waits 20 ms for
/// others, then writes its own and those that arrived meanwhile in one statement; heartbeats that arrive while it runs
/// form the next group. At 10,000 hosts (1,000 heartbeats a second) one statement each was a quarter of PostgreSQL's
/// core and most of the conductor's database time. A group of one is the single-row statement of before.
/// </summary>
internal sealed class HeartbeatWriter(FerryDatabase db, Func<DbDataReader, Service> map, string columns)
{
    /// <summary>Most heartbeats one statement writes (three parameters each).</summary>
    internal const int MaxGroup = 512;

    // How long the writer of a group waits for others to join it: nothing to the 60 s a service may stay silent.
    private static readonly TimeSpan s_gather = TimeSpan.FromMilliseconds(20);

    private readonly string _singleSql = SingleRowSql(columns);
    private readonly object _lock = new();
    private readonly List<Beat> _waiting = [];
    private bool _writing;
    private TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>One service's heartbeat (parameters @h, @b, @at), the row's <paramref name="columns"/> read back; a group's statement sets the same.</summary>
    private static string SingleRowSql(string columns) =>
        $"UPDATE services SET heartbeat_at = @at WHERE host = @h AND \"binary\" = @b RETURNING {columns}";

    private sealed record Beat(string Host, string Binary, long AtTicks)
    {
        public TaskCompletionSource<Service?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>
    /// Sets the heartbeat of (<paramref name="host"/>, <paramref name="binary"/>) to <paramref name="atTicks"/> (UTC ticks),
    /// without waiting for the disk (see <see cref="FerryDatabase.QueryFirstWithoutFlushAsync{T}"/>). Returns the row read
    /// back, or null when there is none.
    /// </summary>
    /// <remarks>A write: <paramref name="cancellationToken"/> stops the wait, not a statement already sent.</remarks>
    public async Task<Service?> BeatAsync(string host, string binary, long atTicks, CancellationToken cancellationToken)
    {
        var beat = new Beat(host, binary, atTicks);
        lock (_lock)
        {
            _waiting.Add(beat);
        }
        while (true)
        {
            bool lead;
            Task written;
            lock (_lock)
            {
                if (beat.Done.Task.IsCompleted)
                {
                    break;
                }
                lead = !_writing;
                _writing = true;
                written = _written.Task;
            }
            if (lead)
            {
                // This caller writes the next group: it waits a moment for others to join (heartbeats spread over their
                // interval rarely overlap a statement that takes a millisecond), then takes its own heartbeat first and the
                // others waiting, in arrival order.
                await Task.Delay(s_gather);
                List<Beat> group;
                lock (_lock)
                {
                    _waiting.Remove(beat);
                    var take = Math.Min(_waiting.Count, MaxGroup - 1);
                    group = [beat, .. _waiting.GetRange(0, take)];
                    _waiting.RemoveRange(0, take);
                }
                await WriteAsync(group);
                break;
            }
            try
            {
                await Task.WhenAny(beat.Done.Task, written).WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                lock (_lock)
                {
                    _waiting.Remove(beat);
                }
                throw;
            }
        }
        return await beat.Done.Task;
    }

    private async Task WriteAsync(List<Beat> group)
    {
        try
        {
            var rows = await WriteGroupAsync(group);
            foreach (var beat in group)
            {
                beat.Done.TrySetResult(rows.GetValueOrDefault((beat.Host, beat.Binary)));
            }
        }
        catch (Exception ex)
        {
            foreach (var beat in group)
            {
                beat.Done.TrySetException(ex);
            }
        }
        finally
        {
            TaskCompletionSource written;
            lock (_lock)
            {
                _writing = false;
                written = _written;
                _written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            written.TrySetResult(); // the waiting callers left out of this group: one of them writes the next
        }
    }

    private async Task<Dictionary<(string Host, string Binary), Service>> WriteGroupAsync(List<Beat> group)
    {
        var found = new Dictionary<(string, string), Service>();
        if (group.Count == 1)
        {
            var beat = group[0];
            if (await db.QueryFirstWithoutFlushAsync(_singleSql, map, CancellationToken.None,
                    ("@h", beat.Host), ("@b", beat.Binary), ("@at", beat.AtTicks)) is { } row)
            {
                found[(row.Host, row.Binary)] = row;
            }
            return found;
        }
        // One row per service (the latest time when a service beat twice), padded to a power of two with copies of the last
        // row, so PostgreSQL prepares ten statements at most instead of one for every group size.
        var rows = group.GroupBy(b => (b.Host, b.Binary)).Select(g => g.MaxBy(b => b.AtTicks)!).ToList();
        var size = (int)Math.Min(MaxGroup, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)rows.Count));
        var parameters = new (string Name, object? Value)[size * 3];
        var values = new string[size];
        for (var i = 0; i < size; i++)
        {
            var beat = rows[Math.Min(i, rows.Count - 1)];
            parameters[3 * i] = ($"@h{i}", beat.Host);
            parameters[3 * i + 1] = ($"@b{i}", beat.Binary);
            parameters[3 * i + 2] = ($"@at{i}", beat.AtTicks);
            values[i] = $"(@h{i}, @b{i}, @at{i})";
        }
        var sql = $"WITH beats(host, bin, at) AS (VALUES {string.Join(", ", values)}) "
            + "UPDATE services SET heartbeat_at = beats.at FROM beats WHERE services.host = beats.host AND services.\"binary\" = beats.bin "
            + $"RETURNING {columns}";
        foreach (var row in await db.QueryAllWithoutFlushAsync(sql, map, CancellationToken.None, parameters))
        {
            found[(row.Host, row.Binary)] = row;
        }
        return found;
    }
}
