namespace Ferry.Compute;

/// <summary>A failure whose fault and failed event were already recorded (before the rollback made things final).</summary>
public sealed class FaultRecordedException(Exception inner) : Exception(inner.Message, inner);
