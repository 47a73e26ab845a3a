using System.Buffers.Binary;
using System.Text;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>
/// The header type, sections and function symbols of a 64-bit little-endian ELF file (the native ferry, or its symbols in
/// <c>ferry.dbg</c>), read from its headers and <c>.symtab</c>.
/// </summary>
public sealed record ElfFile(ushort Type, IReadOnlyList<ElfSection> Sections, IReadOnlyDictionary<string, ulong> FunctionAddresses)
{
    /// <summary>ET_EXEC: an executable linked at a fixed address (not position independent).</summary>
    public const ushort Executable = 2;

    private const uint SymbolTable = 2; // SHT_SYMTAB
    private const int SymbolSize = 24;
    private const byte Function = 2; // STT_FUNC

    public IEnumerable<string> SectionNames => Sections.Select(s => s.Name);

    public ElfSection Section(string name) =>
        Sections.FirstOrDefault(s => s.Name == name) ?? throw new InvalidDataException($"no section {name}");

    public static ElfFile Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F' || bytes[4] != 2 || bytes[5] != 1)
        {
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file");
        }
        var span = bytes.AsSpan();
        var type = BinaryPrimitives.ReadUInt16LittleEndian(span[16..]);
        var sectionOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[40..]));
        var sectionSize = BinaryPrimitives.ReadUInt16LittleEndian(span[58..]);
        var sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[60..]);
        var namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(span[62..]);
        var headers = Enumerable.Range(0, sectionCount).Select(i => sectionOffset + i * sectionSize).ToArray();
        var namesOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[(headers[namesIndex] + 24)..]));
        var sections = new List<ElfSection>(sectionCount);
        var functions = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var header in headers)
        {
            var h = span[header..];
            sections.Add(new ElfSection(
                Text(span, namesOffset + (int)BinaryPrimitives.ReadUInt32LittleEndian(h)),
                BinaryPrimitives.ReadUInt64LittleEndian(h[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[32..])));
            if (BinaryPrimitives.ReadUInt32LittleEndian(h[4..]) != SymbolTable)
            {
                continue;
            }
            var offset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(h[24..]));
            var size = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(h[32..]));
            var strings = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[(headers[BinaryPrimitives.ReadUInt32LittleEndian(h[40..])] + 24)..]));
            for (var symbol = offset; symbol + SymbolSize <= offset + size; symbol += SymbolSize)
            {
                var s = span[symbol..];
                if ((s[4] & 0xf) == Function)
                {
                    functions.TryAdd(Text(span, strings + (int)BinaryPrimitives.ReadUInt32LittleEndian(s)), BinaryPrimitives.ReadUInt64LittleEndian(s[8..]));
                }
            }
        }
        return new ElfFile(type, sections, functions);
    }

    private static string Text(ReadOnlySpan<byte> file, int offset) =>
        Encoding.ASCII.GetString(file.Slice(offset, file[offset..].IndexOf((byte)0)));
}

/// <summary>A section's name, the address it is loaded at and its size.</summary>
public sealed record ElfSection(string Name, ulong Address, ulong Size)
{
    public bool Contains(ulong address) => address >= Address && address < Address + Size;
}
