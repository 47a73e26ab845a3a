namespace Ferry.FunctionalTests;

/// <summary>
/// Tests that start whole Ferries one after another (and `ferry all-in-one` child processes) are CPU-heavy: run alone,
/// after the rest, so they never starve the heartbeats of a fixture that counts a host down after 3 s of silence.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessRestartCollection
{
    public const string Name = "Whole-process restarts";
}
