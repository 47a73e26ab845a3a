using System.Data.Common;

namespace Ferry.ControlPlane.Persistence;

/// <summary>Instance actions, their events, and instance faults: how users learn why a move failed.</summary>
public sealed class ActionStore(FerryDatabase db, TimeProvider time)
{
    public Task StartActionAsync(string instanceUuid, string requestId, string action, string userId, string projectId, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await using var command = FerryDatabase.Command(c, t,
                "INSERT INTO instance_actions(instance_uuid, request_id, action, user_id, project_id, start_time, updated_at) VALUES (@i, @r, @a, @u, @p, @now, @now) ON CONFLICT DO NOTHING",
                ("@i", instanceUuid), ("@r", requestId), ("@a", action), ("@u", userId), ("@p", projectId), ("@now", Rows.Time(time.GetUtcNow())));
            await command.ExecuteNonQueryAsync(ct);
        }, cancellationToken);

    /// <summary>
    /// Starts or finishes an event of the action identified by request id; a failed event marks the action "Error". History
    /// only (<see cref="FerryDatabase.WriteHistoryAsync{T}"/>): a finish whose start a database crash lost is recorded whole.
    /// With <paramref name="eventKey"/> (the compute's key for one run of the step) the row is found by the key: a start
    /// that arrives after its finish, or twice, or at two conductor replicas at once, changes nothing, and so does a second finish.
    /// </summary>
    public Task RecordEventAsync(string instanceUuid, string? requestId, string eventName, string host, bool finished, bool failed, string? details,
        string? traceback = null, string? eventKey = null, DateTimeOffset? startTime = null, CancellationToken cancellationToken = default) =>
        db.WriteHistoryAsync(async (c, t, ct) =>
        {
            var now = Rows.Time(time.GetUtcNow());
            await using var find = FerryDatabase.Command(c, t,
                "SELECT id FROM instance_actions WHERE instance_uuid = @i AND (CAST(@r AS TEXT) IS NULL OR request_id = @r) ORDER BY id DESC LIMIT 1",
                ("@i", instanceUuid), ("@r", requestId));
            if (await find.ExecuteScalarAsync(ct) is not long actionId)
            {
                return;
            }
            if (eventKey is not null)
            {
                if (!await RecordKeyedEventAsync(c, t, actionId, eventKey, eventName, host, startTime is { } s ? Rows.Time(s) : now, finished ? now : null,
                    failed, details, traceback, ct))
                {
                    return;
                }
            }
            else if (!finished)
            {
                await using var insert = FerryDatabase.Command(c, t,
                    "INSERT INTO instance_action_events(action_id, event, start_time, host) VALUES (@a, @e, @now, @h)",
                    ("@a", actionId), ("@e", eventName), ("@now", now), ("@h", host));
                await insert.ExecuteNonQueryAsync(ct);
            }
            else
            {
                await using var update = FerryDatabase.Command(c, t,
                    """
                    UPDATE instance_action_events SET finish_time = @now, result = @res, details = @d, traceback = @tb
                    WHERE id = (SELECT id FROM instance_action_events WHERE action_id = @a AND event = @e AND finish_time IS NULL ORDER BY id DESC LIMIT 1)
                    """,
                    ("@a", actionId), ("@e", eventName), ("@now", now), ("@res", failed ? "Error" : "Success"), ("@d", details), ("@tb", traceback));
                if (await update.ExecuteNonQueryAsync(ct) == 0)
                {
                    await using var insert = FerryDatabase.Command(c, t,
                        "INSERT INTO instance_action_events(action_id, event, start_time, finish_time, result, host, details, traceback) VALUES (@a, @e, @now, @now, @res, @h, @d, @tb)",
                        ("@a", actionId), ("@e", eventName), ("@now", now), ("@res", failed ? "Error" : "Success"), ("@h", host), ("@d", details), ("@tb", traceback));
                    await insert.ExecuteNonQueryAsync(ct);
                }
            }
            await using var touch = FerryDatabase.Command(c, t,
                "UPDATE instance_actions SET updated_at = @now, message = CASE WHEN @failed = 1 THEN 'Error' ELSE message END WHERE id = @a",
                ("@a", actionId), ("@now", now), ("@failed", failed ? 1 : 0));
            await touch.ExecuteNonQueryAsync(ct);
        }, cancellationToken);

    /// <summary>
    /// The keyed start (<paramref name="finishTime"/> null) or finish of an event: one statement whatever arrived before it,
    /// the unique key settling a race between replicas. False when the row was already there as this message would leave it.
    /// </summary>
    private static async Task<bool> RecordKeyedEventAsync(DbConnection c, DbTransaction t, long actionId, string key, string eventName, string host, string startTime,
        string? finishTime, bool failed, string? details, string? traceback, CancellationToken cancellationToken)
    {
        await using var upsert = finishTime is null
            ? FerryDatabase.Command(c, t,
                "INSERT INTO instance_action_events(action_id, event, start_time, host, event_key) VALUES (@a, @e, @start, @h, @k) ON CONFLICT(event_key) DO NOTHING",
                ("@a", actionId), ("@e", eventName), ("@start", startTime), ("@h", host), ("@k", key))
            : FerryDatabase.Command(c, t,
                """
                INSERT INTO instance_action_events(action_id, event, start_time, finish_time, result, host, details, traceback, event_key)
                VALUES (@a, @e, @start, @finish, @res, @h, @d, @tb, @k)
                ON CONFLICT(event_key) DO UPDATE SET finish_time = excluded.finish_time, result = excluded.result, details = excluded.details,
                    traceback = excluded.traceback
                WHERE instance_action_events.finish_time IS NULL
                """,
                ("@a", actionId), ("@e", eventName), ("@start", startTime), ("@finish", finishTime), ("@res", failed ? "Error" : "Success"), ("@h", host),
                ("@d", details), ("@tb", traceback), ("@k", key));
        return await upsert.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public Task<List<InstanceActionRow>> ListActionsAsync(string instanceUuid, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT id, instance_uuid, request_id, action, user_id, project_id, start_time, updated_at, message FROM instance_actions WHERE instance_uuid = @i ORDER BY id DESC",
                ("@i", instanceUuid));
            return await Rows.ReadAllAsync(command, MapAction, ct);
        }, cancellationToken);

    public Task<List<InstanceActionEventRow>> ListEventsAsync(long actionId, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT event, start_time, finish_time, result, host, details, traceback FROM instance_action_events WHERE action_id = @a ORDER BY id",
                ("@a", actionId));
            return await Rows.ReadAllAsync(command, r => new InstanceActionEventRow(
                r.GetString(0), r.GetString(1), Rows.NullableString(r, 2), Rows.NullableString(r, 3), Rows.NullableString(r, 4), Rows.NullableString(r, 5),
                Rows.NullableString(r, 6)), ct);
        }, cancellationToken);

    public Task AddFaultAsync(string instanceUuid, int code, string message, string? host, string? details, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t, ct) =>
        {
            await using var command = FerryDatabase.Command(c, t,
                "INSERT INTO instance_faults(instance_uuid, code, message, details, host, created_at) VALUES (@i, @c, @m, @d, @h, @now)",
                ("@i", instanceUuid), ("@c", code), ("@m", message), ("@d", details), ("@h", host), ("@now", Rows.Time(time.GetUtcNow())));
            await command.ExecuteNonQueryAsync(ct);
        }, cancellationToken);

    public Task<InstanceFaultRow?> LatestFaultAsync(string instanceUuid, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            await using var command = FerryDatabase.Command(c, null,
                "SELECT code, message, details, created_at FROM instance_faults WHERE instance_uuid = @i ORDER BY id DESC LIMIT 1", ("@i", instanceUuid));
            return await Rows.ReadFirstAsync(command, r => new InstanceFaultRow(Rows.Int(r, 0), r.GetString(1), Rows.NullableString(r, 2), r.GetString(3)), ct);
        }, cancellationToken);

    /// <summary>The latest fault of each of <paramref name="instanceUuids"/> that has one, by instance: one query per 500 instances.</summary>
    public Task<Dictionary<string, InstanceFaultRow>> LatestFaultsAsync(IReadOnlyCollection<string> instanceUuids, CancellationToken cancellationToken) =>
        db.ReadAsync(async (c, ct) =>
        {
            var found = new Dictionary<string, InstanceFaultRow>(StringComparer.Ordinal);
            foreach (var chunk in instanceUuids.Distinct(StringComparer.Ordinal).Chunk(500))
            {
                var names = chunk.Select((_, i) => $"@i{i}").ToArray();
                await using var command = FerryDatabase.Command(c, null,
                    $"SELECT instance_uuid, code, message, details, created_at FROM instance_faults WHERE instance_uuid IN ({string.Join(", ", names)}) ORDER BY id DESC",
                    [.. chunk.Select((u, i) => ($"@i{i}", (object?)u))]);
                await using var r = await command.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct))
                {
                    found.TryAdd(r.GetString(0), new InstanceFaultRow(Rows.Int(r, 1), r.GetString(2), Rows.NullableString(r, 3), r.GetString(4)));
                }
            }
            return found;
        }, cancellationToken);

    private static InstanceActionRow MapAction(DbDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), Rows.NullableString(r, 4), Rows.NullableString(r, 5),
        r.GetString(6), Rows.NullableString(r, 7), Rows.NullableString(r, 8));
}

public sealed record InstanceActionRow(long Id, string InstanceUuid, string RequestId, string Action, string? UserId, string? ProjectId, string StartTime, string? UpdatedAt, string? Message);

public sealed record InstanceActionEventRow(string Event, string StartTime, string? FinishTime, string? Result, string? Host, string? Details, string? Traceback = null);

public sealed record InstanceFaultRow(int Code, string Message, string? Details, string CreatedAt);
