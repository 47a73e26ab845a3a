namespace Ferry.Benchmarks.Qemu;

/// <summary>The options of `./ferry bench qemu` (parsed and validated in Program.cs).</summary>
internal sealed record QemuBenchArguments(bool Json, bool Quick, string? Png, int? StatusTicks, string[]? Only, bool Parallel, int? Repeat,
    bool Volumes = false, int? DataMib = null);
