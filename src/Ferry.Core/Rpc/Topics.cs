namespace Ferry.Core.Rpc;

public static class Topics
{
    public const string Conductor = "conductor";
    public const string Scheduler = "scheduler";

    public static string Compute(string host) => $"compute.{host}";
}
