using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ferry.ControlPlane.Placement;

/// <summary>
/// Writes floats the way Placement's Python JSON encoder does: a whole number keeps its ".0"
/// (<c>"allocation_ratio": 16.0</c>, not <c>16</c>), so clients such as osc-placement print 16.0 and 1.0
/// as they do against real Placement. The only floats on Placement's wire are allocation ratios.
/// </summary>
internal sealed class PlacementFloatConverter : JsonConverter<double>
{
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDouble();

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        if (double.IsFinite(value) && value == Math.Floor(value) && Math.Abs(value) < 1e16)
        {
            writer.WriteRawValue(value.ToString("F1", CultureInfo.InvariantCulture), skipInputValidation: true);
        }
        else
        {
            writer.WriteNumberValue(value);
        }
    }
}
