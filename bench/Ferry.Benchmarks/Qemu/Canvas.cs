namespace Ferry.Benchmarks.Qemu;

/// <summary>An RGB raster with the few primitives a bar chart needs; saved with <see cref="PngWriter"/>.</summary>
internal sealed class Canvas
{
    private readonly byte[] _rgb;

    public Canvas(int width, int height, Rgb background)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        Width = width;
        Height = height;
        _rgb = new byte[width * height * 3];
        FillRect(0, 0, width, height, background);
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Row-major RGB, 3 bytes per pixel.</summary>
    public ReadOnlySpan<byte> Pixels => _rgb;

    public void SetPixel(int x, int y, Rgb color)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
        {
            return;
        }
        var i = (y * Width + x) * 3;
        _rgb[i] = color.R;
        _rgb[i + 1] = color.G;
        _rgb[i + 2] = color.B;
    }

    public void FillRect(int x, int y, int width, int height, Rgb color)
    {
        for (var yy = Math.Max(0, y); yy < Math.Min(Height, y + height); yy++)
        {
            for (var xx = Math.Max(0, x); xx < Math.Min(Width, x + width); xx++)
            {
                SetPixel(xx, yy, color);
            }
        }
    }

    public void HorizontalLine(int x0, int x1, int y, Rgb color, int dash = 0)
    {
        for (var x = x0; x <= x1; x++)
        {
            if (dash == 0 || (x - x0) / dash % 2 == 0)
            {
                SetPixel(x, y, color);
            }
        }
    }

    public void VerticalLine(int x, int y0, int y1, Rgb color)
    {
        for (var y = y0; y <= y1; y++)
        {
            SetPixel(x, y, color);
        }
    }

    public void Rect(int x, int y, int width, int height, Rgb color)
    {
        HorizontalLine(x, x + width - 1, y, color);
        HorizontalLine(x, x + width - 1, y + height - 1, color);
        VerticalLine(x, y, y + height - 1, color);
        VerticalLine(x + width - 1, y, y + height - 1, color);
    }

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (x, y).</summary>
    public void Text(int x, int y, string text, Rgb color, int scale = 1)
    {
        foreach (var c in text)
        {
            var glyph = BitmapFont.Glyph(c);
            for (var row = 0; row < BitmapFont.GlyphHeight; row++)
            {
                for (var col = 0; col < BitmapFont.GlyphWidth; col++)
                {
                    if ((glyph[row] >> (BitmapFont.GlyphWidth - 1 - col) & 1) != 0)
                    {
                        FillRect(x + col * scale, y + row * scale, scale, scale, color);
                    }
                }
            }
            x += BitmapFont.Advance * scale;
        }
    }

    public void TextCentered(int centerX, int y, string text, Rgb color, int scale = 1) =>
        Text(centerX - BitmapFont.MeasureWidth(text, scale) / 2, y, text, color, scale);

    public void TextRight(int rightX, int y, string text, Rgb color, int scale = 1) =>
        Text(rightX - BitmapFont.MeasureWidth(text, scale), y, text, color, scale);
}

/// <summary>A 24-bit colour.</summary>
internal readonly record struct Rgb(byte R, byte G, byte B)
{
    public static readonly Rgb White = new(255, 255, 255);
    public static readonly Rgb Black = new(0, 0, 0);
    public static readonly Rgb Grey = new(150, 150, 150);
    public static readonly Rgb LightGrey = new(225, 225, 225);
    public static readonly Rgb Red = new(200, 40, 40);
}
