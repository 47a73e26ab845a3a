using Ferry.Core.Observability;

namespace Ferry.Tests.Core.Observability;

/// <summary>
/// The up gauge is the process's last outcome, shared with every parallel test that queries a database: these tests
/// check the latency records they caused, by an operation label no store uses.
/// </summary>
public sealed class DatabaseMetricsTests
{
    private readonly string _operation = "probe_" + Guid.NewGuid().ToString("N");

    [Fact]
    public void Measure_QuerySucceeds_OkRecordedAndResultReturned()
    {
        using var recorder = new FerryMeterRecorder();

        var result = DatabaseMetrics.Measure(_operation, () => 42);

        Assert.Equal(42, result);
        Assert.Single(recorder.ValuesOf("ferry.db.query.duration", ("operation", _operation), ("outcome", "ok")));
    }

    [Fact]
    public async Task MeasureAsync_QueryThrows_ErrorRecordedAndRethrown()
    {
        using var recorder = new FerryMeterRecorder();

        await Assert.ThrowsAsync<InvalidOperationException>(() => DatabaseMetrics.MeasureAsync<int>(_operation, () => throw new InvalidOperationException("database is locked")));

        Assert.Single(recorder.ValuesOf("ferry.db.query.duration", ("operation", _operation), ("outcome", "error")));
    }
}
