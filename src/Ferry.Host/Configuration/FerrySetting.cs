using System.Globalization;

namespace Ferry.Host.Configuration;

/// <summary>The roles a <see cref="FerrySetting"/> applies to (its flag is on their command lines).</summary>
[Flags]
public enum FerryRoles
{
    None = 0,
    Api = 1,
    Conductor = 2,
    Scheduler = 4,
    Compute = 8,
    AllInOne = 16,
    DbSync = 32,

    /// <summary>`ferry distributed`: every role as its own processes over a PostgreSQL and a RabbitMQ of its own.</summary>
    Distributed = 64,

    /// <summary>The roles that run services (everything but <c>db sync</c>).</summary>
    Running = Api | Conductor | Scheduler | Compute | AllInOne,
    Every = Running | DbSync,
}

/// <summary>
/// One setting: its configuration key (the JSON file's path, and <c>FERRY_</c> + the key with <c>__</c> for sections
/// as its environment variable), its flag, its meaning, its default, how its text is checked and what it sets.
/// One table of these (<see cref="FerrySettings"/>) makes the flags, the help, the binding and the validation.
/// </summary>
public sealed record FerrySetting(
    string Key,
    string Flag,
    string Description,
    string HelpName,
    string? Default,
    FerryRoles Roles,
    Func<string, string?> Check,
    Action<FerryHostOptions, string> Apply)
{
    /// <summary>A switch: given without a value on the command line, true or false in a file or the environment.</summary>
    public bool IsSwitch { get; init; }

    /// <summary>A comma-separated list; a JSON array in the file says the same.</summary>
    public bool IsList { get; init; }

    /// <summary>The environment variable that sets it (FERRY_HOSTS, FERRY_API__COMPUTEPORT…).</summary>
    public string EnvironmentVariable => FerrySettings.EnvironmentPrefix + Key.Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant();

    /// <summary>
    /// Checks <paramref name="text"/>; null when it is good, else the end of a one-line error ("'abc' is not a whole number").
    /// </summary>
    public string? Validate(string text) => Check(text);

    internal static string Invariant(double value) => value.ToString(CultureInfo.InvariantCulture);
}
