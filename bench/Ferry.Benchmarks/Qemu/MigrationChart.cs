using System.Globalization;

namespace Ferry.Benchmarks.Qemu;

/// <summary>
/// Grouped bars per guest RAM size, one bar per dirty rate / policy: total time ÷ lower bound (with the 1.0 bound and
/// the 1.3× target) on top, downtime (with the configured limit) below. Cells that did not complete are marked N/C.
/// </summary>
internal static class MigrationChart
{
    private const int Width = 1000;
    private const int Height = 780;
    private const int Left = 90;
    private const int Right = Width - 30;
    private const int Text = 2; // font scale: 10×14 px glyphs

    private static readonly (double Fraction, Escalation Escalation, string Label, Rgb Color)[] s_series =
    [
        (0, Escalation.None, "dirty 0%", new Rgb(70, 130, 180)),
        (0.25, Escalation.None, "25%", new Rgb(60, 170, 110)),
        (1.5, Escalation.AutoConverge, "150% auto-converge", new Rgb(230, 150, 40)),
        (1.5, Escalation.PostCopy, "150% post-copy", new Rgb(150, 90, 190)),
    ];

    public static Canvas Draw(IReadOnlyList<CellResult> results, int bandwidthMiBps, int downtimeLimitMs)
    {
        var canvas = new Canvas(Width, Height, Rgb.White);
        canvas.TextCentered(Width / 2, 12, $"QEMU live migration via Ferry, bandwidth cap {bandwidthMiBps} MiB/s", Rgb.Black, Text);
        var x = Left;
        foreach (var s in s_series)
        {
            canvas.FillRect(x, 42, 14, 14, s.Color);
            canvas.Text(x + 20, 42, s.Label, Rgb.Black, Text);
            x += 20 + BitmapFont.MeasureWidth(s.Label, Text) + 30;
        }

        var rams = results.Select(r => r.Cell.RamMib).Distinct().Order().ToList();
        var ratios = results.Where(r => r.Completed).Select(r => r.Ratio).DefaultIfEmpty(1);
        var ratioMax = Math.Clamp(Math.Ceiling(ratios.Max() * 2 + 0.2) / 2, 2, 6);
        Panel(canvas, results, rams, top: 100, bottom: 420, "total time / (RAM / bandwidth)", ratioMax, r => r.Ratio, v => v.ToString("0.00", CultureInfo.InvariantCulture),
            [(1.0, "lower bound", Rgb.Grey), (1.3, "1.3x target", Rgb.Red)], tick: 0.5);

        var downs = results.Where(r => r.Completed && !double.IsNaN(r.DowntimeMs)).Select(r => r.DowntimeMs).DefaultIfEmpty(0);
        var downMax = Math.Ceiling(Math.Max(downtimeLimitMs * 1.25, downs.Max() * 1.1) / 100) * 100;
        Panel(canvas, results, rams, top: 480, bottom: 730, "downtime (ms)", downMax, r => r.DowntimeMs, v => v.ToString("0", CultureInfo.InvariantCulture),
            [(downtimeLimitMs, $"limit {downtimeLimitMs} ms", Rgb.Red)], tick: Math.Max(100, Math.Ceiling(downMax / 5 / 100) * 100));

        var groupWidth = (Right - Left) / Math.Max(1, rams.Count);
        for (var g = 0; g < rams.Count; g++)
        {
            canvas.TextCentered(Left + groupWidth * g + groupWidth / 2, 745, $"{rams[g]} MiB guest", Rgb.Black, Text);
        }
        return canvas;
    }

    private static void Panel(Canvas canvas, IReadOnlyList<CellResult> results, List<int> rams, int top, int bottom, string title, double max,
        Func<CellResult, double> value, Func<double, string> format, (double Value, string Label, Rgb Color)[] lines, double tick)
    {
        int Y(double v) => bottom - (int)Math.Round(Math.Clamp(v / max, 0, 1) * (bottom - top));
        canvas.Text(Left, top - 22, title, Rgb.Black, Text);
        for (var v = 0.0; v <= max + 1e-9; v += tick)
        {
            canvas.HorizontalLine(Left, Right, Y(v), Rgb.LightGrey);
            var label = format(v);
            canvas.TextRight(Left - 8, Y(v) - 7, label.Contains('.', StringComparison.Ordinal) ? label.TrimEnd('0').TrimEnd('.') : label, Rgb.Black, Text);
        }
        canvas.VerticalLine(Left, top, bottom, Rgb.Black);
        canvas.HorizontalLine(Left, Right, bottom, Rgb.Black);

        var groupWidth = (Right - Left) / Math.Max(1, rams.Count);
        var barWidth = Math.Min(56, (groupWidth - 40) / s_series.Length);
        for (var g = 0; g < rams.Count; g++)
        {
            var x0 = Left + groupWidth * g + (groupWidth - barWidth * s_series.Length) / 2;
            for (var i = 0; i < s_series.Length; i++)
            {
                var s = s_series[i];
                var cell = results.FirstOrDefault(r => r.Cell.RamMib == rams[g] && r.Cell.DirtyFraction == s.Fraction && r.Cell.Escalation == s.Escalation);
                if (cell is null)
                {
                    continue;
                }
                var bx = x0 + i * barWidth + 3;
                var bw = barWidth - 6;
                var v = value(cell);
                if (!cell.Completed || double.IsNaN(v))
                {
                    canvas.Rect(bx, bottom - 40, bw, 40, Rgb.Red);
                    canvas.TextCentered(bx + bw / 2, bottom - 27, "N/C", Rgb.Red, Text);
                    continue;
                }
                var y = Y(v);
                canvas.FillRect(bx, y, bw, bottom - y, s.Color);
                var label = format(v);
                var labelScale = BitmapFont.MeasureWidth(label, Text) <= barWidth ? Text : 1;
                canvas.TextCentered(bx + bw / 2, Math.Max(top, y - 8 * labelScale) - 2, label, Rgb.Black, labelScale);
                if (v > max)
                {
                    canvas.TextCentered(bx + bw / 2, y + 4, "^", Rgb.White, Text);
                }
            }
        }
        foreach (var (lineValue, label, color) in lines)
        {
            canvas.HorizontalLine(Left, Right, Y(lineValue), color, dash: 6);
            canvas.TextRight(Right, Y(lineValue) - 17, label, color, Text);
        }
    }
}
