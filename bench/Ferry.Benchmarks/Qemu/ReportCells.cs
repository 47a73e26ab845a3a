using System.Globalization;
using System.Text.Json;

namespace Ferry.Benchmarks.Qemu;

/// <summary>How the QEMU reports write a figure: in a Markdown cell ("—" for a figure not measured) and in JSON (null).</summary>
internal static class ReportCells
{
    /// <summary>Nearest rank, as every report takes it: with an even count, the lower middle. Figures not measured are left out.</summary>
    public static double Median(IEnumerable<double> values) => Stats.Percentile([.. values.Where(v => !double.IsNaN(v))], 50);

    public static string Ms(double ms) => double.IsNaN(ms) ? "—" : ms >= 1000
        ? (ms / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " s"
        : ms.ToString("0", CultureInfo.InvariantCulture) + " ms";

    public static string Seconds(double ms) => double.IsNaN(ms) ? "—" : (ms / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " s";

    public static string Mib(double bytes) => double.IsNaN(bytes) ? "—" : (bytes / (1 << 20)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";

    public static string Times(double ratio) => double.IsNaN(ratio) || double.IsInfinity(ratio) ? "—" : ratio.ToString("0.00", CultureInfo.InvariantCulture) + "×";

    public static string YesNo(bool? value) => value switch { true => "yes", false => "**NO**", null => "—" };

    public static void Number(Utf8JsonWriter w, string key, double value)
    {
        if (double.IsNaN(value) || double.IsInfinity(value))
        {
            w.WriteNull(key);
        }
        else
        {
            w.WriteNumber(key, Math.Round(value, 3));
        }
    }

    public static void Bool(Utf8JsonWriter w, string key, bool? value)
    {
        if (value is { } b)
        {
            w.WriteBoolean(key, b);
        }
        else
        {
            w.WriteNull(key);
        }
    }
}
